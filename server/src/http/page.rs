//! What the browser server says about the streams: the HTML page and the
//! JSON list. Stream names come from peers: they are escaped for HTML,
//! JSON and URLs wherever they appear, and never reach a response header.

use super::LatestFrames;
use lanlink_transport::Fingerprint;

/// The page listing every stream. Its script (`/page.js`, [`SCRIPT`])
/// keeps the list live; without scripts it is still right when loaded.
/// Its footer shows the certificate it was served with (`fingerprint`).
///
/// `may_watch` is false for a browser without a session on a server with
/// an access token: the page then lists no stream (the page's script shows
/// them once the browser logged in).
pub(super) fn page(
    frames: &LatestFrames,
    may_watch: bool,
    fingerprint: Option<Fingerprint>,
) -> String {
    let mut body = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>lanlink</title>\
         <style>body{font-family:sans-serif;background:#111;color:#eee}figure{display:inline-block;margin:1em}\
         img{max-width:90vw;border:1px solid #444}a{color:#8cf}a.zoom{cursor:zoom-in}\
         figure.full{position:fixed;inset:0;margin:0;background:#000;z-index:10;text-align:center}\
         figure.full a.zoom{cursor:zoom-out}\
         figure.full img{width:100vw;height:calc(100vh - 2.5em);max-width:none;object-fit:contain;border:0}\
         footer{color:#aaa;font-size:small;margin-top:2em}</style><script src=\"/page.js\" defer></script></head>\
         <body><h1>lanlink</h1><h2>Video</h2><div id=\"streams\">",
    );
    let streams = if may_watch {
        frames.state()
    } else {
        Vec::new()
    };
    let hidden = if streams.is_empty() { "" } else { " hidden" };
    body.push_str(&format!(
        "<p id=\"none\"{hidden}>No streams right now. Publish one with \
         <code>lanlink cam --test-pattern</code>: it shows up here by itself.</p>"
    ));
    for st in streams {
        let (h, u) = (html_escape(&st.name), url_escape(&st.name));
        let caption = html_escape(&caption(&st));
        body.push_str(&format!(
            "<figure data-name=\"{h}\"><a class=\"zoom\" href=\"/stream/{u}\" target=\"_blank\" \
             title=\"full size\"><img src=\"/stream/{u}\" alt=\"{h}\" width=\"{}\" height=\"{}\"></a>\
             <figcaption><span>{caption}</span> — <a class=\"snapshot\" href=\"/snapshot/{u}.jpg\" \
             download>snapshot</a></figcaption></figure>",
            st.width, st.height
        ));
    }
    body.push_str("</div>");
    body.push_str(super::ws::CHAT_HTML);
    body.push_str(super::files::PANEL);
    body.push_str(super::audio::PANEL);
    body.push_str(&footer(fingerprint));
    body.push_str("</body></html>\n");
    body
}

/// The certificate the page came with, for the user to compare with the
/// server console (which prints the same two lines), or a plain-HTTP
/// warning.
fn footer(fingerprint: Option<Fingerprint>) -> String {
    match fingerprint {
        Some(fp) => format!(
            "<footer id=\"tls\"><p>HTTPS with the server's certificate \
             <code id=\"fingerprint\">{fp}</code><br>short form <code id=\"short\">{}</code> \
             — the server console prints the same; so must your browser's certificate details \
             (this page alone proves nothing).</p></footer>",
            fp.grouped()
        ),
        None => "<footer id=\"tls\"><p>Plain HTTP: not encrypted.</p></footer>".to_owned(),
    }
}

/// `/info`: the certificate the page is served with, as [`footer`] shows it.
pub(super) fn info_json(fingerprint: Option<Fingerprint>) -> String {
    match fingerprint {
        Some(fp) => format!(
            "{{\"tls\":true,\"fingerprint\":\"{fp}\",\"short\":\"{}\"}}\n",
            fp.grouped()
        ),
        None => "{\"tls\":false,\"fingerprint\":null,\"short\":null}\n".to_owned(),
    }
}

/// A stream's caption; `page.js` builds the same one from `/state`.
fn caption(st: &super::StreamState) -> String {
    let by = if st.publisher.is_empty() {
        String::new()
    } else {
        format!(" by {}", st.publisher)
    };
    format!("{}{by} — {}×{}", st.name, st.width, st.height)
}

/// The page's script: follows `/state` every second, adding a figure for
/// each new stream and removing those that ended (closing their MJPEG
/// connection), and updating captions. Peer text only ever goes into
/// `textContent` and attribute values, never into HTML. A click on a
/// stream's image shows it full size (again, or Escape, to go back; without
/// scripts the click opens the stream in a new tab); its snapshot link
/// downloads the current frame as `NAME.jpg`.
pub(super) const SCRIPT: &str = r#"'use strict';
(function () {
  const list = document.getElementById('streams');
  const none = document.getElementById('none');
  function caption(s) {
    return s.name + (s.publisher ? ' by ' + s.publisher : '') + ' — ' + s.width + '×' + s.height +
      ' — ' + s.fps.toFixed(1) + ' fps — ' + s.viewers + ' viewer' + (s.viewers === 1 ? '' : 's');
  }
  function add(s) {
    const fig = document.createElement('figure');
    fig.dataset.name = s.name;
    const img = document.createElement('img');
    img.src = '/stream/' + encodeURIComponent(s.name);
    img.alt = s.name;
    img.width = s.width;
    img.height = s.height;
    const zoom = document.createElement('a');
    zoom.className = 'zoom';
    zoom.href = img.src;
    zoom.target = '_blank';
    zoom.title = 'full size';
    zoom.append(img);
    const cap = document.createElement('figcaption');
    const text = document.createElement('span');
    const snap = document.createElement('a');
    snap.className = 'snapshot';
    snap.href = '/snapshot/' + encodeURIComponent(s.name) + '.jpg';
    snap.download = '';
    snap.textContent = 'snapshot';
    cap.append(text, ' — ', snap);
    fig.append(zoom, cap);
    list.append(fig);
    return fig;
  }
  async function poll() {
    try {
      const r = await fetch('/state', { cache: 'no-store' });
      const state = await r.json();
      const streams = state.result.streams;
      const live = new Map(streams.map(function (s) { return [s.name, s]; }));
      for (const fig of Array.from(list.querySelectorAll('figure'))) {
        if (!live.has(fig.dataset.name)) {
          const img = fig.querySelector('img');
          if (img) { img.src = ''; }
          fig.remove();
        }
      }
      for (const s of streams) {
        let fig = null;
        for (const f of list.querySelectorAll('figure')) {
          if (f.dataset.name === s.name) { fig = f; break; }
        }
        if (!fig) { fig = add(s); }
        const text = fig.querySelector('figcaption span');
        if (text) { text.textContent = caption(s); }
      }
      none.hidden = streams.length > 0;
    } catch (e) {
      // The server restarting: try again at the next tick.
    }
  }
  list.addEventListener('click', function (e) {
    const zoom = e.target.closest('a.zoom');
    if (!zoom) { return; }
    e.preventDefault();
    zoom.closest('figure').classList.toggle('full');
  });
  document.addEventListener('keydown', function (e) {
    if (e.key !== 'Escape') { return; }
    for (const fig of list.querySelectorAll('figure.full')) { fig.classList.remove('full'); }
  });
  poll();
  setInterval(poll, 1000);
})();
"#;

/// `s` as a JSON string, quotes included. `<` is escaped too, so the text
/// is safe even inside HTML.
pub(super) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || c == '<' || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `{"ok":true,"result":{"streams":[…]}}`, shaped like uStreamer's
/// `/state`: each stream's name, publisher, size, frame rate, viewers and
/// frame counter.
pub(super) fn state_json(frames: &LatestFrames) -> String {
    let items: Vec<String> = frames
        .state()
        .iter()
        .map(|st| {
            format!(
                "{{\"name\":{},\"publisher\":{},\"width\":{},\"height\":{},\"fps\":{:.1},\"viewers\":{},\"seq\":{}}}",
                json_string(&st.name),
                json_string(&st.publisher),
                st.width,
                st.height,
                if st.fps.is_finite() { st.fps } else { 0.0 },
                st.viewers,
                st.seq
            )
        })
        .collect();
    format!(
        "{{\"ok\":true,\"result\":{{\"streams\":[{}]}}}}\n",
        items.join(",")
    )
}

/// `[{"name":…,"width":…,"height":…,"seq":…}]`.
pub(super) fn streams_json(frames: &LatestFrames) -> String {
    let items: Vec<String> = frames
        .names()
        .into_iter()
        .map(|(n, l)| {
            format!(
                "{{\"name\":{},\"width\":{},\"height\":{},\"seq\":{}}}",
                json_string(&n),
                l.width,
                l.height,
                l.seq
            )
        })
        .collect();
    format!("[{}]\n", items.join(","))
}

pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(percent_decode("/stream/door%20cam"), "/stream/door cam");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(url_escape("door cam/1"), "door%20cam%2F1");
        assert_eq!(html_escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(
            json_string("a\"b\\c\n<\u{1b}\u{2028}é"),
            r#""a\"b\\c\u000a\u003c\u001b\u2028é""#
        );
    }
}
