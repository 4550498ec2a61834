#!/usr/bin/env python3
"""The Python prototype's file client (original-report.txt, FILE TRANSFER),
fixed just enough to run, for scripts/bench-files to measure against.

Usage: proto_file_client.py PORT OUTPUT [--no-chunk-print]

Changes from the report's listing, and nothing else:
  * Python 3 syntax (print function; the report's typos such as `TCP PORT`,
    `AF INET` fixed);
  * the port and the output path come from argv instead of the constant 9001
    and 'received_file'; connects to 127.0.0.1 (the report's 'localhost').
Same 1024-byte recv buffer and write loop. The report's client prints every
chunk it receives (`print('data=%s', (data))`); that is kept by default.
--no-chunk-print drops only that line, to measure the loop without it.
"""
import socket
import sys

TCP_IP = '127.0.0.1'
TCP_PORT = int(sys.argv[1])
OUTPUT = sys.argv[2]
CHUNK_PRINT = '--no-chunk-print' not in sys.argv[3:]
BUFFER_SIZE = 1024

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((TCP_IP, TCP_PORT))
with open(OUTPUT, 'wb') as f:  # create a new file & open it.
    print('file opened')
    while True:
        # print('receiving data...')
        data = s.recv(BUFFER_SIZE)
        if CHUNK_PRINT:
            print('data=%s', (data))
        if not data:
            f.close()
            print('file close()')
            break
        # write data to a file
        f.write(data)
print('Successfully get the file')
s.close()
print('connection closed')
