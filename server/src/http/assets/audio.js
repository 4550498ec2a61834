'use strict';
// The Audio panel: "Listen" opens /audio (a WebSocket carrying every
// talker's Opus packets), decodes each stream with a WebCodecs
// AudioDecoder and hands the PCM to the mixer worklet (/audio-worklet.js),
// which buffers ~60 ms per stream and plays their sum. Each stream has a
// mute button. Names come from peers: they only ever go into textContent.
// window.lanlinkAudio holds what the panel knows (streams, decoded
// packets, the output's level and frequency estimate) for the page and
// its tests.
(function () {
  const button = document.getElementById('audio-listen');
  const status = document.getElementById('audio-status');
  const list = document.getElementById('audio-streams');
  if (!button || !status || !list) { return; }
  // clicks: latencies in ms, capture at the talker to this page's output
  // (see audio-worklet.js), at most the last MAX_CLICKS.
  const MAX_CLICKS = 10000;
  const state = {
    listening: false, streams: 0, decoded: 0, dropped: 0, rms: 0, hz: 0, clicks: [],
  };
  window.lanlinkAudio = state;
  let context = null;
  let mixer = null;
  let socket = null;
  const streams = new Map();

  if (!window.isSecureContext || typeof AudioDecoder === 'undefined' ||
      typeof AudioWorkletNode === 'undefined') {
    button.disabled = true;
    status.textContent = 'Listening needs HTTPS (or this machine) and a browser with WebCodecs.';
    return;
  }

  function say(text) { status.textContent = text; }

  function forget(id) {
    const s = streams.get(id);
    if (!s) { return; }
    try { s.decoder.close(); } catch (e) { /* already closed */ }
    s.item.remove();
    streams.delete(id);
    mixer.port.postMessage({ type: 'end', id: id });
    state.streams = streams.size;
  }

  function decoderFor(id, rate, channels) {
    const decoder = new AudioDecoder({
      output: function (data) {
        const planes = [];
        for (let c = 0; c < data.numberOfChannels; c++) {
          const plane = new Float32Array(data.numberOfFrames);
          data.copyTo(plane, { planeIndex: c, format: 'f32-planar' });
          planes.push(plane);
        }
        data.close();
        state.decoded++;
        mixer.port.postMessage({
          type: 'pcm', id: id, planes: planes, captured: data.timestamp, rate: data.sampleRate,
        },
          planes.map(function (p) { return p.buffer; }));
      },
      error: function (e) {
        const s = streams.get(id);
        if (s) { s.broken = true; }
        say('decoding failed: ' + e.message);
      },
    });
    decoder.configure({ codec: 'opus', sampleRate: rate, numberOfChannels: channels });
    return decoder;
  }

  function start(m) {
    forget(m.id);
    const item = document.createElement('li');
    item.dataset.id = String(m.id);
    item.dataset.name = m.name;
    const label = document.createElement('span');
    label.textContent = m.name + (m.publisher ? ' (' + m.publisher + ')' : '') + ' ';
    const mute = document.createElement('button');
    mute.type = 'button';
    mute.textContent = 'Mute';
    mute.setAttribute('aria-pressed', 'false');
    mute.addEventListener('click', function () {
      const muted = mute.getAttribute('aria-pressed') !== 'true';
      mute.setAttribute('aria-pressed', String(muted));
      mute.textContent = muted ? 'Unmute' : 'Mute';
      mixer.port.postMessage({ type: 'mute', id: m.id, muted: muted });
    });
    item.append(label, mute);
    list.append(item);
    streams.set(m.id, {
      item: item,
      rate: m.rate,
      channels: m.channels,
      decoder: decoderFor(m.id, m.rate, m.channels),
      broken: false,
    });
    mixer.port.postMessage({ type: 'start', id: m.id, channels: m.channels });
    state.streams = streams.size;
  }

  function packet(buffer) {
    if (buffer.byteLength <= 16) { return; }
    const view = new DataView(buffer);
    const id = view.getUint32(0);
    const captured = Number(view.getBigUint64(8));
    const s = streams.get(id);
    if (!s) { return; }
    if (s.broken || s.decoder.state === 'closed') {
      s.decoder = decoderFor(id, s.rate, s.channels);
      s.broken = false;
    }
    // A decoder that cannot keep up loses packets here, not later.
    if (s.decoder.decodeQueueSize > 10) {
      state.dropped++;
      return;
    }
    s.decoder.decode(new EncodedAudioChunk({
      type: 'key',
      timestamp: captured,
      data: new Uint8Array(buffer, 16),
    }));
  }

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    socket = new WebSocket(scheme + location.host + '/audio');
    socket.binaryType = 'arraybuffer';
    socket.onopen = function () { say('listening'); };
    socket.onmessage = function (e) {
      if (typeof e.data === 'string') {
        let m = null;
        try { m = JSON.parse(e.data); } catch (err) { return; }
        if (m.type === 'start') { start(m); } else if (m.type === 'end') { forget(m.id); }
      } else {
        packet(e.data);
      }
    };
    socket.onclose = function () {
      for (const id of Array.from(streams.keys())) { forget(id); }
      mixer.port.postMessage({ type: 'reset' });
      if (state.listening) {
        say('reconnecting…');
        setTimeout(connect, 1000);
      }
    };
  }

  async function listen() {
    button.disabled = true;
    try {
      context = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
      await context.audioWorklet.addModule('/audio-worklet.js');
      mixer = new AudioWorkletNode(context, 'lanlink-mixer', {
        numberOfInputs: 0,
        numberOfOutputs: 1,
        outputChannelCount: [2],
      });
      mixer.port.onmessage = function (e) {
        if (e.data.type === 'level') {
          state.rms = e.data.rms;
          state.hz = e.data.hz;
          if (socket && socket.readyState === WebSocket.OPEN) {
            const db = e.data.rms > 0 ? Math.max(-99, 20 * Math.log10(e.data.rms)) : -99;
            say('listening to ' + streams.size + (streams.size === 1 ? ' stream' : ' streams') +
              ', level ' + db.toFixed(0) + ' dBFS');
          }
        } else if (e.data.type === 'clicks') {
          const now = (performance.timeOrigin + performance.now()) * 1000;
          for (const c of e.data.list) {
            state.clicks.push((now + c.offset * 1e6 - c.captured) / 1000);
          }
          if (state.clicks.length > MAX_CLICKS) {
            state.clicks.splice(0, state.clicks.length - MAX_CLICKS);
          }
        }
      };
      mixer.connect(context.destination);
      await context.resume();
      state.listening = true;
      button.textContent = 'Listening';
      connect();
    } catch (e) {
      button.disabled = false;
      say('cannot play audio: ' + e.message);
    }
  }

  button.addEventListener('click', listen);
})();
