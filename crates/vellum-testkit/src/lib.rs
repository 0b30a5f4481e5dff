//! Helpers shared by the tests of several crates (a dev-dependency only).
//!
//! Disk-full tests mount a small tmpfs and fill it, so that the store meets `ENOSPC` for
//! real; fsync-failure tests put a file system on a loop device over such a tmpfs
//! ([`FailingDisk`]), so that writing back to it fails with `EIO` for real. Mounting needs
//! root; `.ci/run` runs as root. The helpers panic with a message saying what is missing,
//! as a test should.

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

/// An ext4 file system (with or without a journal) on a loop device whose backing file
/// lives on a small tmpfs: once [`FailingDisk::fill_backing`] has filled that tmpfs,
/// writing back a block the file system has not written before fails, and `fdatasync`
/// fails for real (`ENOSPC` or `EIO`; a second `fdatasync` then succeeds, the data lost:
/// what a store must not be fooled by). Blocks already written are rewritten in place and
/// keep working. The loop device takes one page per request (see [`FailingDisk::new`]).
/// Needs root, tmpfs mounts and a free loop device; dropped, it unmounts and detaches
/// everything.
#[derive(Debug)]
pub struct FailingDisk {
    /// Where the ext4 file system is mounted.
    pub dir: PathBuf,
    backing: PathBuf,
    device: String,
    mounted: bool,
    _tmpfs: Mount,
}

fn run(what: &str, cmd: &mut Command) -> String {
    match cmd.output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => panic!(
            "this test needs root, tmpfs and loop devices (util-linux's mount and losetup, e2fsprogs' mkfs.ext4); {what} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "this test needs root, tmpfs and loop devices (util-linux's mount and losetup, e2fsprogs' mkfs.ext4); {what} could not run: {e}"
        ),
    }
}

impl FailingDisk {
    /// Under `root` (which must exist): a tmpfs of `backing_size` holding a sparse image of
    /// `fs_size`, formatted and mounted on `root/fs`. Without a journal, a failed write
    /// fails alone and the rest goes on; but a metadata block that fails (an extent tree
    /// grown into a block not written before) can then lose data synced earlier, which a
    /// journal prevents: with one, the first failed metadata write stops the file system.
    pub fn new(root: &Path, backing_size: &str, fs_size: &str, journal: bool) -> FailingDisk {
        let tmpfs = mount_tmpfs(&root.join("backing"), backing_size);
        let image = root.join("backing/image");
        run(
            "truncate",
            Command::new("truncate").args(["-s", fs_size]).arg(&image),
        );
        let features = if journal {
            "has_journal"
        } else {
            "^has_journal"
        };
        run(
            "mkfs.ext4",
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-O", features])
                .arg(&image),
        );
        let dir = root.join("fs");
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("creating {}: {e}", dir.display());
        }
        let device = run(
            "losetup",
            Command::new("losetup").args(["-f", "--show"]).arg(&image),
        );
        // One page per request to the backing file: the loop driver takes a short write
        // to it for a whole one, so a request that began in a page the tmpfs holds and ran
        // into one it does not would lose its tail without an error. A page is held or
        // not, so each request now fails whole or succeeds whole.
        let name = device.trim_start_matches("/dev/");
        let limit = format!("/sys/block/{name}/queue/max_sectors_kb");
        if let Err(e) = std::fs::write(&limit, "4") {
            let _ = Command::new("losetup").arg("-d").arg(&device).status();
            panic!("this test needs to limit {limit} to 4 KiB: {e}");
        }
        let mut disk = FailingDisk {
            dir,
            backing: root.join("backing"),
            device,
            mounted: false,
            _tmpfs: tmpfs,
        };
        disk.mount();
        disk
    }

    fn mount(&mut self) {
        run(
            "mount",
            Command::new("mount").arg(&self.device).arg(&self.dir),
        );
        self.mounted = true;
    }

    /// Fills the tmpfs under the image: from now on, blocks not written before fail.
    pub fn fill_backing(&self) -> u64 {
        fill(&self.backing.join("filler"))
    }

    /// Frees the tmpfs again: writes succeed from now on. The page cache still holds the
    /// pages whose writing failed (clean, as if written): a process started now reads them.
    pub fn free_backing(&self) {
        let filler = self.backing.join("filler");
        if let Err(e) = std::fs::remove_file(&filler) {
            panic!("removing {}: {e}", filler.display());
        }
    }

    /// Mounts the file system afresh, so that what is read comes from the image (what
    /// reached the "disk"), not from the page cache: as after a reboot.
    pub fn remount(&mut self) {
        run("umount", Command::new("umount").arg(&self.dir));
        self.mounted = false;
        self.mount();
    }

    /// [`FailingDisk::free_backing`], then [`FailingDisk::remount`].
    pub fn repair_and_remount(&mut self) {
        self.free_backing();
        self.remount();
    }
}

impl Drop for FailingDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}
