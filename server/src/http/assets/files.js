'use strict';
// The Files panel: browses the server's shared folder (/files/), links
// every file for download and every folder as a tar (/tar/). Names come
// from the server's disk: they only ever go into textContent and URLs
// (percent-encoded), never into HTML.
(function () {
  const panel = document.getElementById('files');
  const list = document.getElementById('files-list');
  const where = document.getElementById('files-path');
  const tar = document.getElementById('files-tar');
  const error = document.getElementById('files-error');
  if (!panel) { return; }

  // 'a/b c' -> 'a/b%20c': each component encoded, slashes kept.
  function encodePath(path) {
    return path.split('/').map(encodeURIComponent).join('/');
  }
  function join(dir, name) { return dir ? dir + '/' + name : name; }
  function sizeText(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
  }

  async function show(dir) {
    let listing;
    try {
      const r = await fetch('/files/' + (dir ? encodePath(dir) + '/' : ''), { cache: 'no-store' });
      if (r.status === 404 && !dir) { list.hidden = true; where.parentNode.hidden = true; return; }
      if (!r.ok) {
        panel.hidden = false;
        error.textContent = (await r.text()).trim();
        return;
      }
      listing = await r.json();
    } catch (e) {
      error.textContent = 'cannot reach the server';
      return;
    }
    panel.hidden = false;
    error.textContent = listing.truncated ? 'only the first entries are shown' : '';
    panel.dataset.path = listing.path;
    where.textContent = '/' + listing.path;
    tar.href = '/tar/' + encodePath(listing.path);
    list.replaceChildren();
    if (listing.path) {
      const up = document.createElement('li');
      const a = document.createElement('a');
      a.href = '#';
      a.textContent = '..';
      a.className = 'up';
      a.addEventListener('click', function (ev) {
        ev.preventDefault();
        const parts = listing.path.split('/');
        parts.pop();
        show(parts.join('/'));
      });
      up.append(a);
      list.append(up);
    }
    for (const e of listing.entries) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      const path = join(listing.path, e.name);
      li.dataset.name = e.name;
      if (e.dir) {
        a.href = '#';
        a.textContent = e.shown + '/';
        a.addEventListener('click', function (ev) { ev.preventDefault(); show(path); });
        li.append(a);
      } else {
        a.href = '/files/' + encodePath(path);
        a.download = e.name;
        a.textContent = e.shown;
        li.append(a, ' (' + sizeText(e.size) + ')');
      }
      list.append(li);
    }
  }
  // Uploads into the server's inbox, one file after the other, with
  // the browser's own upload progress.
  const form = document.getElementById('files-upload');
  const pick = document.getElementById('files-pick');
  const progress = document.getElementById('files-progress');
  const status = document.getElementById('files-status');
  const state = { progressEvents: 0, results: [] };
  function uploadOne(file) {
    return new Promise(function (resolve) {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/upload/' + encodeURIComponent(file.name));
      xhr.upload.addEventListener('progress', function (ev) {
        if (ev.lengthComputable && ev.total > 0) {
          progress.value = ev.loaded / ev.total;
          state.progressEvents += 1;
        }
      });
      xhr.addEventListener('load', function () {
        const ok = xhr.status === 201;
        if (ok) { progress.value = 1; }
        resolve({ name: file.name, status: xhr.status,
                  text: ok ? 'uploaded ' + file.name : xhr.responseText.trim() });
      });
      xhr.addEventListener('error', function () {
        resolve({ name: file.name, status: 0, text: 'the upload failed (connection lost)' });
      });
      xhr.send(file);
    });
  }
  async function upload(files) {
    for (const file of files) {
      progress.value = 0;
      status.textContent = 'uploading ' + file.name + '…';
      const result = await uploadOne(file);
      state.results.push(result);
      status.textContent = result.text;
    }
    if (panel.dataset.path !== undefined) { show(panel.dataset.path); }
  }
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    const files = Array.from(pick.files);
    pick.value = '';
    upload(files);
  });
  // Shows what the server offers; called again once the browser has
  // logged in (an access token makes /files/ answer 403 before).
  function refresh() {
    fetch('/upload/', { cache: 'no-store' }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (u) {
        if (u && u.enabled) { form.hidden = false; panel.hidden = false; }
      }).catch(function () {});
    show(panel.dataset.path || '');
  }

  window.lanlinkFiles = { show: show, upload: upload, refresh: refresh, state: state };
  refresh();
})();
