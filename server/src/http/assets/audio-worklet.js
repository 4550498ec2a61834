'use strict';
// lanlink's audio mixer, an AudioWorklet: every stream's decoded PCM
// arrives from the page (audio.js) as {type:'pcm', id, planes}; each stream
// has its own jitter buffer that starts playing once TARGET seconds are
// buffered, starts over (silence, then TARGET again) when it runs dry, and
// drops its oldest audio when more than MAX is waiting, so a burst after a
// network stall does not become lasting delay. Streams are summed into a
// stereo output (a mono stream goes to both sides); a muted stream keeps
// being consumed, so unmuting resumes in time. Delay that stands (more
// than SLACK above TARGET for a whole WINDOW, as after a burst) is dropped
// back to TARGET, so latency returns to the target within a second.
// Twice a second the node posts what it played: {type:'level', rms, hz,
// streams}, hz estimated from zero crossings in the audible quanta (the
// page shows the level; tests check the frequency).
//
// Every sample keeps its capture time (the packet's timestamp, µs on the
// talker's clock, plus its place in the packet), so a click's way from the
// talker's encoder to this output can be timed: a sample above CLICK after
// QUIET seconds without one is posted as {type:'clicks', list: [{captured,
// offset}]} (offset: seconds into the block being rendered); the page adds
// the moment the block was handed on (scripts/bench-audio-latency --browser).

const TARGET = 0.06;
const MAX = 0.25;
const CAPACITY = 1.0;
const SLACK = 0.03;
const WINDOW = 0.5;
const CLICK = 0.3;
const QUIET = 0.1;

class Stream {
  constructor(channels) {
    this.channels = Math.max(1, Math.min(2, channels | 0));
    this.size = Math.ceil(sampleRate * CAPACITY);
    this.rings = [];
    for (let c = 0; c < this.channels; c++) {
      this.rings.push(new Float32Array(this.size));
    }
    this.stamps = new Float64Array(this.size);
    this.least = Infinity;
    this.watched = 0;
    this.sinceLoud = 0;
    this.read = 0;
    this.write = 0;
    this.count = 0;
    this.playing = false;
    this.muted = false;
  }

  push(planes, captured, rate) {
    const n = planes[0].length;
    const step = 1e6 / (rate || sampleRate);
    for (let i = 0; i < n; i++) {
      this.stamps[this.write] = captured + i * step;
      for (let c = 0; c < this.channels; c++) {
        const plane = planes[Math.min(c, planes.length - 1)];
        this.rings[c][this.write] = plane[i];
      }
      this.write = (this.write + 1) % this.size;
      if (this.count === this.size) {
        this.read = (this.read + 1) % this.size; // full: the oldest goes
      } else {
        this.count++;
      }
    }
    const max = Math.floor(sampleRate * MAX);
    const target = Math.floor(sampleRate * TARGET);
    if (this.count > max) {
      const drop = this.count - target;
      this.read = (this.read + drop) % this.size;
      this.count -= drop;
    }
  }

  // Adds up to `frames` samples into left/right; click onsets go to
  // `clicks`.
  mixInto(left, right, frames, clicks) {
    if (!this.playing) {
      if (this.count < Math.floor(sampleRate * TARGET)) {
        return;
      }
      this.playing = true;
    }
    const n = Math.min(frames, this.count);
    const l = this.rings[0];
    const r = this.rings[this.channels - 1];
    const quiet = sampleRate * QUIET;
    for (let i = 0; i < n; i++) {
      if (Math.abs(l[this.read]) > CLICK) {
        if (this.sinceLoud >= quiet) {
          clicks.push({ captured: this.stamps[this.read], offset: i / sampleRate });
        }
        this.sinceLoud = 0;
      } else {
        this.sinceLoud++;
      }
      if (!this.muted) {
        left[i] += l[this.read];
        right[i] += r[this.read];
      }
      this.read = (this.read + 1) % this.size;
    }
    this.count -= n;
    if (n < frames) {
      this.playing = false; // ran dry: buffer up again
      this.least = Infinity;
      this.watched = 0;
      return;
    }
    // The least buffered over the window is delay nobody needed.
    this.least = Math.min(this.least, this.count);
    this.watched += frames;
    if (this.watched >= sampleRate * WINDOW) {
      const target = Math.floor(sampleRate * TARGET);
      if (this.least > target + sampleRate * SLACK) {
        const drop = this.least - target;
        this.read = (this.read + drop) % this.size;
        this.count -= drop;
      }
      this.least = Infinity;
      this.watched = 0;
    }
  }
}

class Mixer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.streams = new Map();
    this.sumSquares = 0;
    this.crossings = 0;
    this.samples = 0;
    this.audible = 0;
    this.last = 0;
    this.port.onmessage = (e) => this.message(e.data);
  }

  message(m) {
    if (m.type === 'start') {
      this.streams.set(m.id, new Stream(m.channels));
    } else if (m.type === 'end') {
      this.streams.delete(m.id);
    } else if (m.type === 'reset') {
      this.streams.clear();
    } else if (m.type === 'mute') {
      const s = this.streams.get(m.id);
      if (s) { s.muted = !!m.muted; }
    } else if (m.type === 'pcm') {
      const s = this.streams.get(m.id);
      if (s && m.planes.length > 0) { s.push(m.planes, m.captured, m.rate); }
    }
  }

  process(inputs, outputs) {
    const out = outputs[0];
    const left = out[0];
    const right = out.length > 1 ? out[1] : new Float32Array(left.length);
    const clicks = [];
    for (const s of this.streams.values()) {
      s.mixInto(left, right, left.length, clicks);
    }
    if (clicks.length > 0) {
      this.port.postMessage({ type: 'clicks', list: clicks });
    }
    let blockSquares = 0;
    let blockCrossings = 0;
    for (let i = 0; i < left.length; i++) {
      const v = left[i];
      blockSquares += v * v;
      if ((v >= 0) !== (this.last >= 0)) { blockCrossings++; }
      this.last = v;
    }
    this.sumSquares += blockSquares;
    this.samples += left.length;
    // The frequency of what is audible: quanta of silence (a stream
    // buffering up again) would otherwise read as a lower pitch.
    if (blockSquares / left.length > 1e-4) {
      this.crossings += blockCrossings;
      this.audible += left.length;
    }
    if (this.samples >= sampleRate / 2) {
      this.port.postMessage({
        type: 'level',
        rms: Math.sqrt(this.sumSquares / this.samples),
        hz: this.audible > 0 ? this.crossings / 2 / (this.audible / sampleRate) : 0,
        streams: this.streams.size,
      });
      this.sumSquares = 0;
      this.crossings = 0;
      this.samples = 0;
      this.audible = 0;
    }
    return true;
  }
}

registerProcessor('lanlink-mixer', Mixer);
