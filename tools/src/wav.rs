//! Checks of what media clients recorded: whether a tone was audible
//! throughout what `lanlink listen --output-file` wrote, and how many
//! frames `lanlink view --save` saved.

use std::path::{Path, PathBuf};

/// The share of 20 ms frames of a 16-bit mono WAV whose RMS shows the tone
/// (amplitude 0.5, RMS 0.35) rather than silence, counted from the first
/// audible frame (before it the talker was still starting) to the last
/// but ten (the end fades out).
pub fn audible_share(path: &Path) -> Result<f64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    // Walk the RIFF chunks to `data`.
    let mut at = 12;
    let data = loop {
        let head = bytes
            .get(at..at + 8)
            .ok_or_else(|| format!("{}: no data chunk", path.display()))?;
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        if &head[..4] == b"data" {
            let end = (at + 8 + len).min(bytes.len());
            break &bytes[at + 8..end];
        }
        at += 8 + len + (len & 1);
    };
    let samples: Vec<f64> = data
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    let loud: Vec<bool> = samples
        .chunks_exact(960)
        .map(|f| (f.iter().map(|s| s * s).sum::<f64>() / f.len() as f64).sqrt() > 0.05)
        .collect();
    let first = loud.iter().position(|l| *l).unwrap_or(loud.len());
    let playing = loud
        .get(first..loud.len().saturating_sub(10))
        .unwrap_or_default();
    if playing.len() < 50 {
        return Err(format!(
            "{}: under a second of the tone was played",
            path.display()
        ));
    }
    let audible = playing.iter().filter(|l| **l).count();
    Ok(audible as f64 / playing.len() as f64)
}

/// Counts and removes the JPEGs in `dir`.
pub fn take_jpegs(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let p: PathBuf = e.path();
        if p.extension().is_some_and(|x| x == "jpg") && std::fs::remove_file(&p).is_ok() {
            n += 1;
        }
    }
    n
}
