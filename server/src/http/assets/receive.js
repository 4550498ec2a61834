'use strict';
// receive.js: files other users send to this page's chat user
// (`lanlink send SERVER --to NAME FILE`). The offer arrives over the chat's
// `/ws` session (chat.js hands every file frame to `LanlinkReceive.handle`)
// and shows the sender's name as the server verified it, the file's name
// and size — through `textContent` only — with Accept and Decline.
//
// Accepting takes the chunks over the same connection, acknowledging every
// MiB (the sender keeps at most its window unacknowledged, so the relay
// never buffers), hashes them with BLAKE3 as they come (below), checks the
// size and hash the sender announces at the end, confirms, and offers the
// file as a download (a Blob). Files are held in the page's memory until
// discarded, so offers above `MAX_SIZE` — counting what is held or being
// received already — are declined with that reason, and the list keeps at
// most `MAX_SHOWN` finished entries.
const LanlinkReceive = (function () {
  const MAX_SIZE = 512 * 1024 * 1024;
  const ACK_EVERY = 1024 * 1024;
  // Offers waiting for an answer at most; more are declined.
  const MAX_WAITING = 8;
  const MAX_SHOWN = 50;

  // BLAKE3 (https://github.com/BLAKE3-team/BLAKE3-specs), hashing mode
  // only, incremental: the reference implementation's structure.
  const IV = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
  const CHUNK_START = 1;
  const CHUNK_END = 2;
  const PARENT = 4;
  const ROOT = 8;
  const BLOCK = 64;
  const CHUNK = 1024;

  function g(s, a, b, c, d, x, y) {
    s[a] = (s[a] + s[b] + x) | 0;
    s[d] = ((s[d] ^ s[a]) >>> 16) | ((s[d] ^ s[a]) << 16);
    s[c] = (s[c] + s[d]) | 0;
    s[b] = ((s[b] ^ s[c]) >>> 12) | ((s[b] ^ s[c]) << 20);
    s[a] = (s[a] + s[b] + y) | 0;
    s[d] = ((s[d] ^ s[a]) >>> 8) | ((s[d] ^ s[a]) << 24);
    s[c] = (s[c] + s[d]) | 0;
    s[b] = ((s[b] ^ s[c]) >>> 7) | ((s[b] ^ s[c]) << 25);
  }

  // The message word order of each of the 7 rounds (PERM applied 0…6 times).
  const SCHEDULE = [];
  for (let r = 0, order = [...Array(16).keys()]; r < 7; r++, order = PERM.map((i) => order[i])) {
    SCHEDULE.push(order);
  }
  const state = new Uint32Array(16);

  // The 16 output words of compressing one block (a fresh array).
  function compress(cv, m, counter, blockLen, flags) {
    const s = state;
    s.set(cv);
    s[8] = IV[0]; s[9] = IV[1]; s[10] = IV[2]; s[11] = IV[3];
    s[12] = counter % 0x100000000;
    s[13] = Math.floor(counter / 0x100000000);
    s[14] = blockLen;
    s[15] = flags;
    for (let round = 0; round < 7; round++) {
      const o = SCHEDULE[round];
      g(s, 0, 4, 8, 12, m[o[0]], m[o[1]]);
      g(s, 1, 5, 9, 13, m[o[2]], m[o[3]]);
      g(s, 2, 6, 10, 14, m[o[4]], m[o[5]]);
      g(s, 3, 7, 11, 15, m[o[6]], m[o[7]]);
      g(s, 0, 5, 10, 15, m[o[8]], m[o[9]]);
      g(s, 1, 6, 11, 12, m[o[10]], m[o[11]]);
      g(s, 2, 7, 8, 13, m[o[12]], m[o[13]]);
      g(s, 3, 4, 9, 14, m[o[14]], m[o[15]]);
    }
    const out = new Uint32Array(16);
    for (let i = 0; i < 8; i++) {
      out[i] = s[i] ^ s[i + 8];
      out[i + 8] = s[i + 8] ^ cv[i];
    }
    return out;
  }

  // A block's bytes (zero-padded) as little-endian words.
  function words(bytes) {
    const w = new Uint32Array(16);
    let i = 0;
    for (; i + 4 <= bytes.length; i += 4) {
      w[i >> 2] = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    }
    for (; i < bytes.length; i++) { w[i >> 2] |= bytes[i] << (8 * (i & 3)); }
    return w;
  }

  // What a chunk or parent node outputs: its chaining value, or as the
  // root, the hash.
  class Output {
    constructor(cv, blockWords, counter, blockLen, flags) {
      Object.assign(this, { cv, blockWords, counter, blockLen, flags });
    }
    chainingValue() { return compress(this.cv, this.blockWords, this.counter, this.blockLen, this.flags).slice(0, 8); }
    rootBytes() {
      const s = compress(this.cv, this.blockWords, 0, this.blockLen, this.flags | ROOT);
      const out = new Uint8Array(32);
      for (let i = 0; i < 32; i++) { out[i] = s[i >> 2] >>> (8 * (i & 3)); }
      return out;
    }
  }

  function parentOutput(left, right) {
    const w = new Uint32Array(16);
    w.set(left);
    w.set(right, 8);
    return new Output(IV, w, 0, BLOCK, PARENT);
  }

  class ChunkState {
    constructor(counter) {
      this.cv = IV.slice();
      this.counter = counter;
      this.block = new Uint8Array(BLOCK);
      this.blockLen = 0;
      this.blocks = 0;
    }
    len() { return this.blocks * BLOCK + this.blockLen; }
    startFlag() { return this.blocks === 0 ? CHUNK_START : 0; }
    update(input) {
      let at = 0;
      while (at < input.length) {
        if (this.blockLen === BLOCK) {
          this.cv = compress(this.cv, words(this.block), this.counter, BLOCK, this.startFlag()).slice(0, 8);
          this.blocks += 1;
          this.block.fill(0);
          this.blockLen = 0;
        }
        const take = Math.min(BLOCK - this.blockLen, input.length - at);
        this.block.set(input.subarray(at, at + take), this.blockLen);
        this.blockLen += take;
        at += take;
      }
    }
    output() {
      return new Output(this.cv, words(this.block.subarray(0, this.blockLen)), this.counter, this.blockLen,
        this.startFlag() | CHUNK_END);
    }
  }

  class Blake3 {
    constructor() {
      this.chunk = new ChunkState(0);
      this.stack = [];
    }
    update(input) {
      let at = 0;
      while (at < input.length) {
        if (this.chunk.len() === CHUNK) {
          let cv = this.chunk.output().chainingValue();
          let total = this.chunk.counter + 1;
          // Merge finished subtrees: one per trailing zero bit of `total`.
          while (total % 2 === 0) {
            cv = parentOutput(this.stack.pop(), cv).chainingValue();
            total /= 2;
          }
          this.stack.push(cv);
          this.chunk = new ChunkState(this.chunk.counter + 1);
        }
        const take = Math.min(CHUNK - this.chunk.len(), input.length - at);
        this.chunk.update(input.subarray(at, at + take));
        at += take;
      }
      return this;
    }
    digest() {
      let out = this.chunk.output();
      for (let i = this.stack.length - 1; i >= 0; i--) {
        out = parentOutput(this.stack[i], out.chainingValue());
      }
      return out.rootBytes();
    }
  }

  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  function size(n) {
    const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
  }
  // The last part of a `/`-separated name, for the download's file name
  // (the browser sanitises it further).
  const baseName = (name) => name.split('/').filter(Boolean).pop() || 'download';

  const list = document.getElementById('receive-list');
  const transfers = new Map(); // stream -> transfer
  // The files received so far: { name, size, hash (hex), blob }.
  const received = [];
  let held = 0; // bytes of files received or being received, not discarded
  let session = null;

  function span(text, cls) {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    return s;
  }

  function setState(t, state, text) {
    t.state = state;
    t.li.dataset.state = state;
    t.status.textContent = text;
    if (state !== 'offered') { t.buttons.remove(); }
  }

  function offer(m, stream) {
    const from = m.from || '(unknown sender)';
    const li = document.createElement('li');
    li.dataset.stream = String(stream);
    li.dataset.state = 'offered';
    li.dataset.from = from;
    li.dataset.name = m.name;
    li.append(span(from, 'from'), span(' offers ', ''), span(m.name, 'name'), span(' (' + size(m.size) + ') ', 'size'));
    const buttons = document.createElement('span');
    const accept = document.createElement('button');
    accept.textContent = 'Accept';
    accept.className = 'accept';
    const decline = document.createElement('button');
    decline.textContent = 'Decline';
    decline.className = 'decline';
    buttons.append(accept, ' ', decline);
    const progress = document.createElement('progress');
    progress.max = Math.max(1, m.size);
    progress.value = 0;
    progress.hidden = true;
    const status = span('', 'status');
    li.append(buttons, progress, ' ', status);
    list.prepend(li);
    // Old finished entries go (their files stay until discarded).
    for (const old of [...list.children].reverse()) {
      if (list.childElementCount <= MAX_SHOWN) { break; }
      if (old.dataset.state === 'declined' || old.dataset.state === 'failed') { old.remove(); }
    }
    const t = { stream, offer: m, li, buttons, progress, status, state: 'offered', session };
    transfers.set(stream, t);
    li.hidden = false;
    list.hidden = false;

    const waiting = [...transfers.values()].filter((x) => x.state === 'offered').length;
    if (m.size > MAX_SIZE) {
      refuse(t, Lanlink.CODE.TOO_LARGE, 'the browser holds a received file in memory and takes at most ' +
        size(MAX_SIZE) + '; this one is ' + size(m.size));
      return;
    }
    if (held + m.size > MAX_SIZE) {
      refuse(t, Lanlink.CODE.TOO_LARGE, 'the browser holds ' + size(held) + ' of received files already (at most ' +
        size(MAX_SIZE) + '); they must be discarded first');
      return;
    }
    if (waiting > MAX_WAITING) {
      refuse(t, Lanlink.CODE.TOO_LARGE, 'too many offers waiting in this browser');
      return;
    }
    accept.onclick = () => start(t);
    decline.onclick = () => refuse(t, Lanlink.CODE.FORBIDDEN, 'declined by the user');
  }

  function refuse(t, code, reason) {
    t.session.send(Lanlink.encode.fileReject(t.stream, code, reason));
    setState(t, 'declined', 'declined: ' + reason);
    transfers.delete(t.stream);
  }

  function cancel(t, code, reason) {
    t.session.send(Lanlink.encode.fileCancel(t.stream, code, reason));
    fail(t, reason);
  }

  function fail(t, reason) {
    if (t.reserved) {
      held -= t.offer.size;
      t.reserved = false;
    }
    t.chunks = null;
    setState(t, 'failed', 'failed: ' + reason);
    transfers.delete(t.stream);
  }

  function start(t) {
    if (t.state !== 'offered' || t.session !== session || !session) {
      fail(t, 'the connection it came on is gone');
      return;
    }
    if (held + t.offer.size > MAX_SIZE) {
      refuse(t, Lanlink.CODE.TOO_LARGE, 'the browser holds too much already; discard received files first');
      return;
    }
    held += t.offer.size;
    t.reserved = true;
    t.chunks = [];
    t.received = 0;
    t.acked = 0;
    t.hasher = new Blake3();
    t.progress.hidden = false;
    setState(t, 'receiving', 'receiving…');
    t.session.send(Lanlink.encode.fileAccept(t.stream, 0));
  }

  function chunk(t, m) {
    if (t.state !== 'receiving') { return; }
    const len = m.data.length;
    if (m.offset !== t.received) {
      cancel(t, Lanlink.CODE.UNEXPECTED, 'a chunk out of order (at ' + m.offset + ', expected ' + t.received + ')');
      return;
    }
    if (t.received + len > t.offer.size) {
      cancel(t, Lanlink.CODE.TOO_LARGE, 'more bytes than offered');
      return;
    }
    t.chunks.push(m.data);
    t.hasher.update(m.data);
    t.received += len;
    t.progress.value = t.received;
    t.status.textContent = size(t.received) + ' of ' + size(t.offer.size);
    if (t.received >= t.acked + ACK_EVERY) {
      t.acked = t.received;
      t.session.send(Lanlink.encode.fileAccept(t.stream, t.acked));
    }
  }

  function complete(t, m) {
    if (t.state !== 'receiving') { return; }
    if (m.size !== t.received || m.size !== t.offer.size) {
      t.session.send(Lanlink.encode.fileReject(t.stream, Lanlink.CODE.HASH_MISMATCH,
        'received ' + t.received + ' bytes, the sender says ' + m.size));
      fail(t, 'the size does not match');
      return;
    }
    const digest = t.hasher.digest();
    if (hex(digest) !== hex(m.hash)) {
      t.session.send(Lanlink.encode.fileReject(t.stream, Lanlink.CODE.HASH_MISMATCH,
        'the received bytes do not have the announced BLAKE3 hash'));
      fail(t, 'the BLAKE3 hash does not match; nothing kept');
      return;
    }
    t.session.send(Lanlink.encode.fileComplete(t.stream, m.size, m.hash));
    const blob = new Blob(t.chunks, { type: 'application/octet-stream' });
    t.chunks = null;
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = baseName(t.offer.name);
    link.textContent = 'save ' + baseName(t.offer.name);
    link.className = 'save';
    const entry = { name: t.offer.name, size: m.size, hash: hex(digest), blob };
    received.push(entry);
    const discard = document.createElement('button');
    discard.textContent = 'Discard';
    discard.className = 'discard';
    discard.onclick = () => {
      URL.revokeObjectURL(link.href);
      received.splice(received.indexOf(entry), 1);
      held -= m.size;
      t.reserved = false;
      setState(t, 'discarded', 'discarded');
    };
    t.li.dataset.hash = hex(digest);
    t.li.dataset.size = String(m.size);
    setState(t, 'done', 'received, BLAKE3 verified ');
    t.status.append(link, ' ', discard);
    transfers.delete(t.stream);
  }

  // Every file frame of the chat session `s` (`m` decoded, on `stream`).
  function handle(m, stream, s) {
    session = s;
    if (m.type === 'fileOffer') {
      offer(m, stream);
      return;
    }
    const t = transfers.get(stream);
    // Late frames of a transfer that ended here are dropped.
    if (!t || t.session !== s) { return; }
    switch (m.type) {
      case 'fileChunk': chunk(t, m); break;
      case 'fileComplete': complete(t, m); break;
      case 'fileReject':
      case 'fileCancel': fail(t, 'the sender gave up: ' + m.reason); break;
      default: break;
    }
  }

  // The chat session ended: its transfers cannot go on.
  function closed() {
    for (const t of [...transfers.values()]) { fail(t, 'the connection closed'); }
    session = null;
  }

  return { handle, closed, Blake3, hex, MAX_SIZE, received };
})();
