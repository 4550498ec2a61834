'use strict';
// lanlink.js: the lanlink wire format (docs/PROTOCOL.md, version 1) for
// the browser, and a session over the server's `/ws` WebSocket.
//
// The WebSocket carries the plain lanlink byte stream in binary messages,
// split anywhere: the server bridges it to its transport, so the browser
// is a client like any other and must answer `Ping`s (done here) or be cut.
//
// Layout: `Writer`/`Reader` (the field encodings, §4), `encode` (the
// frames a client sends), `decodePayload` (the frames a chat client
// receives), `FrameDecoder` (frames out of a byte stream, §2–3) and
// `Session` (the WebSocket, the handshake and the keepalive). To add a
// message: a `KIND` entry, an `encode` function and a `decodePayload` case.
const Lanlink = (function () {
  const MAGIC0 = 0x4c; // 'L'
  const VERSION = 1;
  const HEADER = 14;
  // What this side accepts from the server (its own default, §3.2).
  const MAX_PAYLOAD = 16 * 1024 * 1024;

  const KIND = {
    HELLO: 0x01, WELCOME: 0x02, REFUSE: 0x03, PING: 0x04, PONG: 0x05, ERROR: 0x06, GOODBYE: 0x07,
    JOIN: 0x10, LEAVE: 0x11, CHAT: 0x12, PRIVATE: 0x13, SET_NICK: 0x14, NICK_CHANGED: 0x15,
    ROSTER_REQUEST: 0x16, ROSTER: 0x17, PRESENCE: 0x18, NOTICE: 0x19,
    HISTORY_REQUEST: 0x1a, HISTORY: 0x1b,
    FILE_OFFER: 0x23, FILE_ACCEPT: 0x24, FILE_REJECT: 0x25, FILE_CHUNK: 0x26, FILE_COMPLETE: 0x27,
    FILE_CANCEL: 0x28,
  };
  // Kinds a version-1 peer may send (§5); anything else ends the stream.
  function knownKind(k) {
    return (k >= 0x01 && k <= 0x0b) || (k >= 0x10 && k <= 0x1b) || (k >= 0x20 && k <= 0x28) ||
      (k >= 0x30 && k <= 0x34) || (k >= 0x40 && k <= 0x44);
  }
  const CAPS = { CHAT: 1, FILE: 2, AUDIO: 4, VIDEO: 8, OFFERS: 16 };
  // Error codes the chat shows differently (§11).
  const CODE = { BAD_TOKEN: 2, NAME_TAKEN: 4, INVALID_NAME: 5, UNEXPECTED: 7, TOO_LARGE: 9, NOT_FOUND: 10,
    FORBIDDEN: 11, HASH_MISMATCH: 15, TOO_MANY_CONNECTIONS: 20 };

  const utf8 = new TextEncoder();
  const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

  // Big-endian fields into a growing byte array.
  class Writer {
    constructor() { this.bytes = []; }
    u8(v) { this.bytes.push(v & 0xff); return this; }
    u16(v) { return this.u8(v >>> 8).u8(v); }
    u32(v) { return this.u16(v >>> 16).u16(v & 0xffff); }
    // Numbers up to 2^53 (timestamps in ms); nonces go through `raw`.
    u64(v) { return this.u32(Math.floor(v / 0x100000000)).u32(v % 0x100000000); }
    bool(v) { return this.u8(v ? 1 : 0); }
    raw(b) { for (const x of b) { this.bytes.push(x); } return this; }
    text(s) {
      const b = utf8.encode(s);
      if (b.length > 0xffff) { throw new Error('text longer than 65535 bytes'); }
      return this.u16(b.length).raw(b);
    }
    optText(s) { return s == null ? this.u8(0) : this.u8(1).text(s); }
  }

  // Big-endian fields out of one payload; every read checks its length,
  // and `end` checks nothing is left (one encoding per message, §1.5).
  class Reader {
    constructor(bytes) { this.b = bytes; this.at = 0; }
    take(n) {
      if (this.at + n > this.b.length) { throw new Error('truncated payload'); }
      const s = this.b.subarray(this.at, this.at + n);
      this.at += n;
      return s;
    }
    u8() { return this.take(1)[0]; }
    u16() { const s = this.take(2); return (s[0] << 8) | s[1]; }
    u32() { const s = this.take(4); return ((s[0] << 24) >>> 0) + ((s[1] << 16) | (s[2] << 8) | s[3]); }
    u64() { const hi = this.u32(); return hi * 0x100000000 + this.u32(); }
    bool() {
      const v = this.u8();
      if (v > 1) { throw new Error('invalid boolean'); }
      return v === 1;
    }
    text() { return strictUtf8.decode(this.take(this.u16())); }
    optText() { return this.bool() ? this.text() : null; }
    // A 32-byte hash, or null (`Option<[u8; 32]>`).
    optHash() { return this.bool() ? this.take(32).slice() : null; }
    // Everything left (a file chunk's data).
    rest() { return this.take(this.b.length - this.at); }
    list(item) {
      const n = this.u16();
      const out = [];
      for (let i = 0; i < n; i++) { out.push(item(this)); }
      return out;
    }
    end() { if (this.at !== this.b.length) { throw new Error('trailing bytes'); } }
  }

  // A whole frame: header (§2) and payload.
  function frame(kind, payload, stream) {
    const w = new Writer();
    w.u8(MAGIC0).u8(MAGIC0).u8(VERSION).u8(kind).u16(0).u32(stream || 0).u32(payload.bytes.length);
    w.raw(payload.bytes);
    return new Uint8Array(w.bytes);
  }

  // Frames a client sends. `from` and the timestamp are the server's to fill.
  const encode = {
    hello: (name, token, caps) => frame(KIND.HELLO, new Writer().text(name).optText(token).u32(caps)),
    pong: (nonce) => frame(KIND.PONG, new Writer().raw(nonce)),
    goodbye: (reason) => frame(KIND.GOODBYE, new Writer().text(reason || '')),
    join: (room, password) => frame(KIND.JOIN, new Writer().text(room).optText(password)),
    leave: (room) => frame(KIND.LEAVE, new Writer().text(room)),
    chat: (room, text, action) =>
      frame(KIND.CHAT, new Writer().text(room).text('').text(text).bool(action).u64(0)),
    privateMessage: (to, text, action) =>
      frame(KIND.PRIVATE, new Writer().text(to).text('').text(text).bool(action).u64(0)),
    setNick: (name) => frame(KIND.SET_NICK, new Writer().text(name)),
    rosterRequest: (room) => frame(KIND.ROSTER_REQUEST, new Writer().text(room)),
    historyRequest: (room, limit) => frame(KIND.HISTORY_REQUEST, new Writer().text(room).u16(limit)),
    // Answers to a file offered on `stream` (§ file service): take it from
    // `offset` (also the running acknowledgement), decline it, give up, or
    // confirm the verified whole.
    fileAccept: (stream, offset) => frame(KIND.FILE_ACCEPT, new Writer().u64(offset).bool(false), stream),
    fileReject: (stream, code, reason) => frame(KIND.FILE_REJECT, new Writer().u16(code).text(reason), stream),
    fileCancel: (stream, code, reason) => frame(KIND.FILE_CANCEL, new Writer().u16(code).text(reason), stream),
    fileComplete: (stream, size, hash) =>
      frame(KIND.FILE_COMPLETE, new Writer().u64(size).raw(hash), stream),
  };

  function chatMessage(r) {
    return { room: r.text(), from: r.text(), text: r.text(), action: r.bool(), timestamp: r.u64() };
  }

  // The payload of a frame a chat client receives (chat, and files offered
  // to its user), as `{ type, … }`;
  // other kinds come back as `{ type: 'other' }` (not decoded).
  function decodePayload(kind, payload) {
    const r = new Reader(payload);
    let m;
    switch (kind) {
      case KIND.WELCOME:
        m = { type: 'welcome', serverName: r.text(), clientId: r.u32(), name: r.text(),
          capabilities: r.u32(), maxPayload: r.u32(), motd: r.text() };
        break;
      case KIND.REFUSE: m = { type: 'refuse', code: r.u16(), reason: r.text() }; break;
      case KIND.PING: m = { type: 'ping', nonce: r.take(8).slice() }; break;
      case KIND.PONG: m = { type: 'pong', nonce: r.take(8).slice() }; break;
      case KIND.ERROR: m = { type: 'error', code: r.u16(), message: r.text() }; break;
      case KIND.GOODBYE: m = { type: 'goodbye', reason: r.text() }; break;
      case KIND.CHAT: m = Object.assign({ type: 'chat' }, chatMessage(r)); break;
      case KIND.PRIVATE:
        m = { type: 'private', to: r.text(), from: r.text(), text: r.text(), action: r.bool(),
          timestamp: r.u64() };
        break;
      case KIND.NICK_CHANGED: m = { type: 'nick', old: r.text(), new: r.text() }; break;
      case KIND.ROSTER: m = { type: 'roster', room: r.text(), members: r.list((x) => x.text()) }; break;
      case KIND.PRESENCE: {
        const room = r.text();
        const name = r.text();
        const change = r.u8();
        if (change > 1) { throw new Error('invalid presence change'); }
        m = { type: 'presence', room, name, joined: change === 0, reason: r.text() };
        break;
      }
      case KIND.NOTICE: m = { type: 'notice', room: r.optText(), text: r.text() }; break;
      case KIND.HISTORY: m = { type: 'history', room: r.text(), messages: r.list(chatMessage) }; break;
      case KIND.FILE_OFFER:
        m = { type: 'fileOffer', name: r.text(), size: r.u64(), hash: r.optHash(), offset: r.u64(),
          to: r.optText(), from: r.optText() };
        break;
      case KIND.FILE_ACCEPT: m = { type: 'fileAccept', offset: r.u64(), prefixHash: r.optHash() }; break;
      case KIND.FILE_REJECT: m = { type: 'fileReject', code: r.u16(), reason: r.text() }; break;
      case KIND.FILE_CHUNK: m = { type: 'fileChunk', offset: r.u64(), data: r.rest() }; break;
      case KIND.FILE_COMPLETE: m = { type: 'fileComplete', size: r.u64(), hash: r.take(32).slice() }; break;
      case KIND.FILE_CANCEL: m = { type: 'fileCancel', code: r.u16(), reason: r.text() }; break;
      default: return { type: 'other' };
    }
    r.end();
    return m;
  }

  // Frames out of a byte stream. The header is checked before its payload
  // is waited for (a length over the limit is refused at once); errors are
  // thrown and the stream is then unusable (§3.4).
  class FrameDecoder {
    constructor() { this.buf = new Uint8Array(0); }
    push(bytes) {
      const joined = new Uint8Array(this.buf.length + bytes.length);
      joined.set(this.buf);
      joined.set(bytes, this.buf.length);
      this.buf = joined;
    }
    // The next `{ kind, stream, message }`, or null until more bytes come.
    next() {
      const b = this.buf;
      if (b.length >= 1 && b[0] !== MAGIC0) { throw new Error('bad magic'); }
      if (b.length >= 2 && b[1] !== MAGIC0) { throw new Error('bad magic'); }
      if (b.length < HEADER) { return null; }
      const h = new Reader(b.subarray(0, HEADER));
      h.take(2);
      const version = h.u8();
      const kind = h.u8();
      const flags = h.u16();
      const stream = h.u32();
      const length = h.u32();
      if (version !== VERSION) { throw new Error('protocol version ' + version + ', expected ' + VERSION); }
      if (!knownKind(kind)) { throw new Error('unknown kind ' + kind); }
      if (flags !== 0) { throw new Error('reserved flags set'); }
      if (length > MAX_PAYLOAD) { throw new Error('frame too large'); }
      if (b.length < HEADER + length) { return null; }
      const payload = b.slice(HEADER, HEADER + length);
      this.buf = b.slice(HEADER + length);
      return { kind, stream, message: decodePayload(kind, payload) };
    }
  }

  // One connection to the server as `name`: the handshake, the answers to
  // `Ping`, and every other decoded message handed to `on.message`.
  // `on.open(welcome)`, `on.refused(refuse)` and `on.closed(why)` say how it goes.
  class Session {
    constructor(options, on) {
      this.on = on;
      this.decoder = new FrameDecoder();
      this.ended = false;
      const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
      this.ws = new WebSocket(scheme + location.host + '/ws');
      this.ws.binaryType = 'arraybuffer';
      this.ws.onopen = () => {
        this.send(encode.hello(options.name, options.token || null, options.capabilities || CAPS.CHAT));
      };
      this.ws.onmessage = (e) => this.receive(new Uint8Array(e.data));
      this.ws.onclose = () => this.end('the connection closed');
      this.ws.onerror = () => this.end('the connection failed');
    }
    send(bytes) {
      if (this.ws.readyState === WebSocket.OPEN) { this.ws.send(bytes); }
    }
    receive(bytes) {
      if (this.ended) { return; }
      this.decoder.push(bytes);
      try {
        for (let f = this.decoder.next(); f; f = this.decoder.next()) {
          const m = f.message;
          if (m.type === 'ping') {
            this.send(encode.pong(m.nonce));
          } else if (m.type === 'welcome') {
            this.on.open(m);
          } else if (m.type === 'refuse') {
            this.on.refused(m);
          } else if (m.type === 'goodbye') {
            this.end('the server said goodbye: ' + m.reason);
          } else if (m.type !== 'pong') {
            this.on.message(m, f);
          }
        }
      } catch (e) {
        this.end('bad data from the server: ' + e.message);
        this.ws.close();
      }
    }
    end(why) {
      if (!this.ended) {
        this.ended = true;
        this.on.closed(why);
      }
    }
    // Says goodbye, then closes once the server has answered (or soon).
    close() {
      this.send(encode.goodbye('quit'));
      setTimeout(() => this.ws.close(), 1000);
    }
  }

  return { KIND, CAPS, CODE, encode, decodePayload, FrameDecoder, Session, Writer, Reader };
})();
