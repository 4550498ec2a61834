'use strict';
// chat.js: the page's chat panel, a lanlink chat client (lanlink.js) over
// `/ws`. Everything a peer wrote (names, rooms, messages, reasons) goes into
// the page through `textContent` only, never as HTML.
//
// `/?name=NAME&room=ROOM` fills the form in and joins at once. A lost
// connection is tried again (1, 2, 4 … 30 s apart) and its rooms joined
// again, as `lanlink chat` does.
(function () {
  const $ = (id) => document.getElementById(id);
  const login = $('chat-login');
  const main = $('chat-main');
  const status = $('chat-status');
  const log = $('chat-log');
  const roomsBox = $('chat-rooms');
  const text = $('chat-text');
  const passwordForm = $('chat-password');

  // The rooms this page is in, by folded name: { name, members: Set }.
  const rooms = new Map();
  const fold = (s) => s.toLowerCase();
  let session = null;
  let me = null;
  let here = null; // the room messages go to
  let joining = null; // the room of the last Join sent
  let joiningPassword = null;
  let wanted = null; // { name, token } while the user wants to be connected
  let attempt = 0; // reconnections tried since the last success
  let refusal = null; // the current connection's Refuse, if any
  const rejoin = new Map(); // folded room -> { name, password }, joined again on reconnect
  const MAX_LOG = 1000;

  function say(kind, parts, extra) {
    const li = document.createElement('li');
    li.dataset.kind = kind;
    for (const [k, v] of Object.entries(extra || {})) { li.dataset[k] = v; }
    const time = document.createElement('span');
    time.className = 'time';
    const at = extra && extra.time ? new Date(Number(extra.time)) : new Date();
    time.textContent = at.toLocaleTimeString();
    li.append(time);
    for (const p of parts) {
      const span = document.createElement('span');
      span.textContent = p;
      li.append(span);
    }
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(li);
    while (log.childElementCount > MAX_LOG) { log.firstElementChild.remove(); }
    if (atBottom) { log.scrollTop = log.scrollHeight; }
  }

  // A room message as the log shows it: `#room <from> text` or `#room * from acts`.
  function line(m) {
    const where = m.room ? '#' + m.room + ' ' : '';
    return m.action ? [where + '* ' + m.from + ' ' + m.text] : [where, '<' + m.from + '> ', m.text];
  }

  function room(name) {
    let r = rooms.get(fold(name));
    if (!r) {
      r = { name, members: new Set() };
      rooms.set(fold(name), r);
    }
    return r;
  }

  function render() {
    roomsBox.replaceChildren();
    for (const r of rooms.values()) {
      const box = document.createElement('div');
      box.dataset.room = r.name;
      if (here && fold(here) === fold(r.name)) { box.className = 'here'; }
      const title = document.createElement('strong');
      title.textContent = '#' + r.name;
      const list = document.createElement('ul');
      for (const name of [...r.members].sort()) {
        const li = document.createElement('li');
        li.dataset.name = name;
        li.textContent = name;
        li.title = 'send ' + name + ' a private message';
        li.onclick = (e) => {
          e.stopPropagation();
          text.value = '/msg ' + name + ' ';
          text.focus();
        };
        list.append(li);
      }
      box.append(title, list);
      box.onclick = () => { here = r.name; render(); };
      roomsBox.append(box);
    }
    $('chat-here').textContent = here ? '#' + here + ' ' : '(no room) ';
  }

  function join(name, password) {
    joining = name;
    joiningPassword = password || null;
    session.send(Lanlink.encode.join(name, password || null));
  }

  function handle(m) {
    switch (m.type) {
      case 'chat':
        say('chat', line(m), { room: m.room, from: m.from, time: m.timestamp });
        break;
      case 'private': {
        const mine = fold(m.from) === fold(me);
        say('private', [(mine ? '→ ' + m.to : '[private]') + ' '].concat(line({ from: m.from, text: m.text, action: m.action })),
          { from: m.from, time: m.timestamp });
        break;
      }
      case 'roster': {
        const r = room(m.room);
        r.members = new Set(m.members);
        if (joining && fold(joining) === fold(m.room)) {
          rejoin.set(fold(m.room), { name: m.room, password: joiningPassword });
          here = r.name;
          joining = null;
          passwordForm.hidden = true;
        }
        if (!here) { here = r.name; }
        render();
        break;
      }
      case 'history':
        for (const h of m.messages) {
          say('chat', line(h), { room: h.room, from: h.from, time: h.timestamp, history: '1' });
        }
        break;
      case 'presence': {
        const r = room(m.room);
        if (m.joined) {
          r.members.add(m.name);
        } else if (fold(m.name) === fold(me)) {
          rooms.delete(fold(m.room));
          rejoin.delete(fold(m.room));
          if (here && fold(here) === fold(m.room)) { here = rooms.size ? rooms.values().next().value.name : null; }
        } else {
          for (const n of r.members) { if (fold(n) === fold(m.name)) { r.members.delete(n); } }
        }
        say('presence', ['-- ' + m.name + (m.joined ? ' joined ' : ' left ') + m.room +
          (m.reason ? ' (' + m.reason + ')' : '')], { room: m.room, name: m.name });
        render();
        break;
      }
      case 'nick':
        for (const r of rooms.values()) {
          if (r.members.delete(m.old)) { r.members.add(m.new); }
        }
        if (fold(m.old) === fold(me)) { me = m.new; }
        say('notice', ['-- ' + m.old + ' is now ' + m.new]);
        render();
        break;
      case 'notice':
        say('notice', ['-- ' + (m.room ? '[' + m.room + '] ' : '') + m.text]);
        break;
      case 'error':
        if (m.code === Lanlink.CODE.FORBIDDEN && joining) {
          $('chat-password-room').textContent = '#' + joining;
          passwordForm.hidden = false;
        }
        say('error', ['! ' + m.message]);
        break;
      default:
        break;
    }
  }

  function connect() {
    refusal = null;
    status.textContent = attempt ? 'connecting again…' : 'connecting…';
    me = wanted.name;
    session = new Lanlink.Session(wanted, {
      open(welcome) {
        attempt = 0;
        me = welcome.name;
        status.textContent = 'connected to ' + welcome.serverName + ' as ' + welcome.name;
        login.hidden = true;
        main.hidden = false;
        if (welcome.motd) { say('notice', ['-- ' + welcome.motd]); }
        for (const r of rejoin.values()) { join(r.name, r.password); }
        text.focus();
      },
      refused(r) {
        refusal = r;
        status.textContent = 'refused: ' + r.reason;
        if (r.code === Lanlink.CODE.BAD_TOKEN) { $('chat-token').focus(); }
      },
      message(m, f) {
        // Files offered to this user: the Receive panel (receive.js).
        if (m.type.startsWith('file')) {
          if (typeof LanlinkReceive !== 'undefined') { LanlinkReceive.handle(m, f.stream, session); }
        } else {
          handle(m);
        }
      },
      closed(why) {
        if (typeof LanlinkReceive !== 'undefined') { LanlinkReceive.closed(); }
        session = null;
        rooms.clear();
        here = null;
        render();
        // Again after a lost connection; after a refusal only while our
        // old connection may still hold the name, or the address is busy.
        const again = wanted && (!refusal || (attempt > 0 && (refusal.code === Lanlink.CODE.NAME_TAKEN ||
          refusal.code === Lanlink.CODE.TOO_MANY_CONNECTIONS)));
        const what = refusal ? 'refused: ' + refusal.reason : 'disconnected: ' + why;
        if (again) {
          const wait = Math.min(30, 2 ** attempt);
          attempt += 1;
          status.textContent = what + ' — trying again in ' + wait + ' s';
          setTimeout(() => { if (wanted && !session) { connect(); } }, wait * 1000);
        } else {
          wanted = null;
          attempt = 0;
          rejoin.clear();
          status.textContent = what;
          login.hidden = false;
          main.hidden = true;
        }
      },
    });
  }

  function start(name, token, room) {
    if (session || !name) { return; }
    wanted = { name, token };
    rejoin.clear();
    if (room) { rejoin.set(fold(room), { name: room, password: null }); }
    connect();
  }

  function command(input) {
    const [verb, ...rest] = input.split(' ');
    const arg = rest.join(' ').trim();
    switch (verb) {
      case '/join': {
        const [name, password] = arg.split(/\s+/);
        if (name) { join(name, password); }
        return;
      }
      case '/leave':
        if (arg || here) { session.send(Lanlink.encode.leave(arg || here)); }
        return;
      case '/msg': {
        const to = rest[0];
        const body = rest.slice(1).join(' ');
        if (to && body) {
          session.send(Lanlink.encode.privateMessage(to, body, false));
          say('private', ['→ ' + to + ' ', '<' + me + '> ', body], { from: me });
        }
        return;
      }
      case '/me':
        if (here && arg) {
          session.send(Lanlink.encode.chat(here, arg, true));
          say('chat', line({ room: here, from: me, text: arg, action: true }), { room: here, from: me });
        }
        return;
      case '/nick':
        if (arg) { session.send(Lanlink.encode.setNick(arg)); }
        return;
      case '/who':
        if (here) { session.send(Lanlink.encode.rosterRequest(here)); }
        return;
      default:
        say('error', ['! unknown command ' + verb]);
    }
  }

  login.onsubmit = (e) => {
    e.preventDefault();
    start($('chat-name').value.trim(), $('chat-token').value || null, $('chat-room').value.trim());
  };
  $('chat-say').onsubmit = (e) => {
    e.preventDefault();
    const input = text.value;
    text.value = '';
    if (!session || !input.trim()) { return; }
    if (input.startsWith('/')) {
      command(input);
    } else if (here) {
      session.send(Lanlink.encode.chat(here, input, false));
      say('chat', line({ room: here, from: me, text: input, action: false }), { room: here, from: me, mine: '1' });
    } else {
      say('error', ['! join a room first: /join ROOM']);
    }
  };
  passwordForm.onsubmit = (e) => {
    e.preventDefault();
    const room = $('chat-password-room').textContent.replace(/^#/, '');
    join(room, $('chat-password-text').value);
    $('chat-password-text').value = '';
  };
  $('chat-quit').onclick = () => {
    wanted = null;
    if (session) { session.close(); }
  };

  // No token on this server, or this browser logged in already (`POST
  // /auth`: the server then puts the token into our Hello itself, and the
  // page never sees it): no token field (an older server: keep it).
  fetch('/auth', { cache: 'no-store' })
    .then((r) => r.json())
    .then((a) => { if (a && (a.token_required === false || a.ok === true)) { $('chat-token').hidden = true; } })
    .catch(() => {});

  // A bookmark or QR code: /?name=NAME&room=ROOM joins directly.
  const params = new URLSearchParams(location.search);
  if (params.get('room')) { $('chat-room').value = params.get('room'); }
  if (params.get('name')) {
    $('chat-name').value = params.get('name');
    start(params.get('name'), null, $('chat-room').value.trim());
  }
})();
