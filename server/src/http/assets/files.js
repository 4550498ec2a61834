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
      if (r.status === 404 && !dir) { panel.hidden = true; return; }
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
  window.lanlinkFiles = { show: show };
  show('');
})();
