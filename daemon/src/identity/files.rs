//! Private-file helpers: directories created 0700 and files created 0600 at creation time (never
//! chmod afterwards, so there is no window with wider permissions), and atomic replacement.

use rand::RngCore;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist, then checks it as
/// the socket directory is checked: a real directory, ours, mode 0700 (`config::paths`).
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), crate::config::paths::PathError> {
    crate::config::paths::ensure_private_dir(dir, rustix::process::geteuid().as_raw())
}

/// Creates a new file with mode 0600, failing if it exists (`O_CREAT|O_EXCL`).
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// A fresh, unused temporary path beside `target` (same directory, so rename is atomic).
fn temp_beside(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce = rand::thread_rng().next_u64();
    target.with_file_name(format!(".{name}.tmp-{}-{nonce:016x}", std::process::id()))
}

/// Writes `bytes` to a new 0600 temp file beside `target`, syncs it, and moves it into place
/// (replacing `target` atomically). Readers see the old or the new content, never a mix.
pub(crate) fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_beside(target);
    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, target)?;
        sync_dir(target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Like [`write_atomic`] but never replaces an existing `target` (hard link, then unlink the
/// temp): two daemons racing to create an identity cannot overwrite each other.
pub(crate) fn write_new_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_beside(target);
    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::hard_link(&tmp, target)?;
        sync_dir(target)
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// Syncs the directory holding `path` so a rename or link survives a crash.
fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Moves a bad file out of the way as `<name>.corrupt-<unix ms>`; returns the new path.
pub(crate) fn move_aside(path: &Path, now_ms: u64) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = path.with_file_name(format!("{name}.corrupt-{now_ms}"));
    fs::rename(path, &aside)?;
    Ok(aside)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
