//! What the browser server says about the streams: the HTML page and the
//! JSON list. Stream names come from peers: they are escaped for HTML,
//! JSON and URLs wherever they appear, and never reach a response header.

use super::LatestFrames;

/// The page listing every stream.
pub(super) fn page(frames: &LatestFrames) -> String {
    let mut body = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>lanlink video</title>\
         <style>body{font-family:sans-serif;background:#111;color:#eee}figure{display:inline-block;margin:1em}\
         img{max-width:90vw;border:1px solid #444}</style></head><body><h1>lanlink video</h1>",
    );
    let streams = frames.names();
    if streams.is_empty() {
        body.push_str("<p>No streams right now. Publish one with <code>lanlink cam HOST --test-pattern</code>, then reload.</p>");
    }
    for (name, l) in streams {
        let (h, u) = (html_escape(&name), url_escape(&name));
        body.push_str(&format!(
            "<figure><img src=\"/stream/{u}\" alt=\"{h}\" width=\"{}\" height=\"{}\"><figcaption>{h} — {}×{} — \
             <a href=\"/snapshot/{u}\">snapshot</a></figcaption></figure>",
            l.width, l.height, l.width, l.height
        ));
    }
    body.push_str("</body></html>\n");
    body
}

/// `[{"name":…,"width":…,"height":…,"seq":…}]`.
pub(super) fn streams_json(frames: &LatestFrames) -> String {
    let items: Vec<String> = frames
        .names()
        .into_iter()
        .map(|(n, l)| {
            let escaped: String = n
                .chars()
                .flat_map(|c| match c {
                    '"' => "\\\"".chars().collect::<Vec<_>>(),
                    '\\' => "\\\\".chars().collect(),
                    // `<` too, so the text is safe even inside HTML.
                    c if c.is_control() || c == '<' => {
                        format!("\\u{:04x}", c as u32).chars().collect()
                    }
                    c => vec![c],
                })
                .collect();
            format!(
                "{{\"name\":\"{escaped}\",\"width\":{},\"height\":{},\"seq\":{}}}",
                l.width, l.height, l.seq
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
    }
}
