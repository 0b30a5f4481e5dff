//! Helpers shared by the tests of several crates (a dev-dependency only).
//!
//! Disk-full tests mount a small tmpfs and fill it, so that the store meets `ENOSPC` for
//! real. Mounting needs root; `.ci/run` runs as root. The helpers panic with a message
//! saying what is missing, as a test should.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted by [`mount_tmpfs`]; unmounted (lazily) on drop.
#[derive(Debug)]
pub struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `4m`, `12m`) on `dir`, creating
/// `dir` first.
pub fn mount_tmpfs(dir: &Path, size: &str) -> Mount {
    if let Err(e) = std::fs::create_dir_all(dir) {
        panic!("creating {}: {e}", dir.display());
    }
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => Mount(dir.to_path_buf()),
        Ok(o) => panic!(
            "this test needs root and tmpfs (`mount -t tmpfs -o size={size} tmpfs {}`) and could not mount: {}{}",
            dir.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("this test needs root and tmpfs: running `mount` failed: {e}"),
    }
}

/// Writes to a new file at `path` until the file system is full; the bytes written.
pub fn fill(path: &Path) -> u64 {
    let mut f = match std::fs::File::create(path) {
        Ok(f) => f,
        Err(e) => panic!("creating {}: {e}", path.display()),
    };
    let chunk = vec![0u8; 16 << 10];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let _ = f.sync_all();
    written
}
