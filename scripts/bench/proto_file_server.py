#!/usr/bin/env python3
"""The Python prototype's file server (original-report.txt, FILE TRANSFER),
fixed just enough to run, for scripts/bench-files to measure against.

Usage: proto_file_server.py FILE PORT

Changes from the report's listing, and nothing else:
  * Python 3 syntax (print function; the report's typos such as `TCP IP`,
    `BUFFER SIZE`, `//` comments and `if not 1` fixed);
  * the file name comes from argv instead of sys.stdin.readline() per client,
    the port from argv instead of the constant 9001;
  * binds 127.0.0.1 (the report's 'localhost');
  * the inner `while (1)` send loop never ended (it kept sending empty
    reads): it now stops at end of file, which is what the following
    `if not l: close` evidently meant;
  * sock.send -> sock.sendall, so a partial send cannot silently lose data
    (same syscalls for 1024-byte blocks on a blocking socket).
Same 1024-byte buffer, one thread per client, same read/send loop.
"""
import socket
import sys
from threading import Thread

TCP_IP = '127.0.0.1'
TCP_PORT = int(sys.argv[2])
BUFFER_SIZE = 1024
FILENAME = sys.argv[1]

# Socket creation
tcpsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcpsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcpsock.bind((TCP_IP, TCP_PORT))  # Socket Binding
threads = []


class ClientThread(Thread):
    # thread Initialization
    def __init__(self, ip, port, sock):
        Thread.__init__(self)
        self.ip = ip
        self.port = port
        self.sock = sock
        print(" New thread started for " + ip + ":" + str(port), flush=True)

    def run(self):
        filename = FILENAME  # file to be transferred
        f = open(filename, 'rb')  # open a file
        while True:
            l = f.read(BUFFER_SIZE)
            while l:
                self.sock.sendall(l)
                # print('Sent ',repr(l))
                l = f.read(BUFFER_SIZE)
            if not l:
                f.close()
                self.sock.close()
                break


while True:
    tcpsock.listen(5)
    print("Waiting for incoming connections...", flush=True)
    (conn, (ip, port)) = tcpsock.accept()
    print('Got connection from ', (ip, port), flush=True)
    newthread = ClientThread(ip, port, conn)
    newthread.start()
    threads.append(newthread)
