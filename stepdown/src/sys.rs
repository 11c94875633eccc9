//! Raw Linux system calls for amd64, arm64, 32-bit arm (EABI), riscv64, 386,
//! ppc64le and s390x: the step-down links no libc.
//! Only the calls it needs, each a thin wrapper that turns -errno into Err.

use core::ffi::{c_char, CStr};

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const READ: usize = 0;
    pub const WRITE: usize = 1;
    pub const CLOSE: usize = 3;
    pub const RT_SIGACTION: usize = 13;
    pub const IOCTL: usize = 16;
    pub const SETPGID: usize = 109;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const GETPID: usize = 39;
    pub const CLONE: usize = 56;
    pub const EXECVE: usize = 59;
    pub const WAIT4: usize = 61;
    pub const KILL: usize = 62;
    pub const FSYNC: usize = 74;
    pub const FCHMOD: usize = 91;
    pub const GETGROUPS: usize = 115;
    pub const SETGROUPS: usize = 116;
    pub const SETRESUID: usize = 117;
    pub const GETRESUID: usize = 118;
    pub const SETRESGID: usize = 119;
    pub const GETRESGID: usize = 120;
    pub const CAPGET: usize = 125;
    pub const CAPSET: usize = 126;
    pub const RT_SIGTIMEDWAIT: usize = 128;
    pub const PRCTL: usize = 157;
    pub const GETDENTS64: usize = 217;
    pub const EXIT_GROUP: usize = 231;
    pub const OPENAT: usize = 257;
    pub const MKDIRAT: usize = 258;
    pub const FCHOWNAT: usize = 260;
    pub const UNLINKAT: usize = 263;
    pub const RENAMEAT2: usize = 316;
    pub const STATX: usize = 332;
    pub const READLINKAT: usize = 267;
    pub const OPENAT2: usize = 437;
}

// arm64 and riscv64 share the generic table (include/uapi/asm-generic/unistd.h).
#[cfg(any(target_arch = "aarch64", target_arch = "riscv64"))]
mod nr {
    pub const READ: usize = 63;
    pub const WRITE: usize = 64;
    pub const CLOSE: usize = 57;
    pub const RT_SIGACTION: usize = 134;
    pub const IOCTL: usize = 29;
    pub const SETPGID: usize = 154;
    pub const RT_SIGPROCMASK: usize = 135;
    pub const GETPID: usize = 172;
    pub const CLONE: usize = 220;
    pub const EXECVE: usize = 221;
    pub const WAIT4: usize = 260;
    pub const KILL: usize = 129;
    pub const FSYNC: usize = 82;
    pub const FCHMOD: usize = 52;
    pub const GETGROUPS: usize = 158;
    pub const SETGROUPS: usize = 159;
    pub const SETRESUID: usize = 147;
    pub const GETRESUID: usize = 148;
    pub const SETRESGID: usize = 149;
    pub const GETRESGID: usize = 150;
    pub const CAPGET: usize = 90;
    pub const CAPSET: usize = 91;
    pub const RT_SIGTIMEDWAIT: usize = 137;
    pub const PRCTL: usize = 167;
    pub const GETDENTS64: usize = 61;
    pub const EXIT_GROUP: usize = 94;
    pub const OPENAT: usize = 56;
    pub const MKDIRAT: usize = 34;
    pub const FCHOWNAT: usize = 54;
    pub const UNLINKAT: usize = 35;
    pub const RENAMEAT2: usize = 276;
    pub const STATX: usize = 291;
    pub const READLINKAT: usize = 78;
    pub const OPENAT2: usize = 437;
}

// 32-bit arm, EABI (arch/arm/tools/syscall.tbl). The user and group calls are
// the `*32` ones: the plain ones take 16-bit IDs and would cut 100000 to 34464.
#[cfg(target_arch = "arm")]
mod nr {
    pub const READ: usize = 3;
    pub const WRITE: usize = 4;
    pub const CLOSE: usize = 6;
    pub const RT_SIGACTION: usize = 174;
    pub const IOCTL: usize = 54;
    pub const SETPGID: usize = 57;
    pub const RT_SIGPROCMASK: usize = 175;
    pub const GETPID: usize = 20;
    pub const CLONE: usize = 120;
    pub const EXECVE: usize = 11;
    pub const WAIT4: usize = 114;
    pub const KILL: usize = 37;
    pub const FSYNC: usize = 118;
    pub const FCHMOD: usize = 94;
    pub const GETGROUPS: usize = 205; // getgroups32
    pub const SETGROUPS: usize = 206; // setgroups32
    pub const SETRESUID: usize = 208; // setresuid32
    pub const GETRESUID: usize = 209; // getresuid32
    pub const SETRESGID: usize = 210; // setresgid32
    pub const GETRESGID: usize = 211; // getresgid32
    pub const CAPGET: usize = 184;
    pub const CAPSET: usize = 185;
    pub const RT_SIGTIMEDWAIT: usize = 177;
    pub const PRCTL: usize = 172;
    pub const GETDENTS64: usize = 217;
    pub const EXIT_GROUP: usize = 248;
    pub const OPENAT: usize = 322;
    pub const MKDIRAT: usize = 323;
    pub const FCHOWNAT: usize = 325;
    pub const UNLINKAT: usize = 328;
    pub const RENAMEAT2: usize = 382;
    pub const STATX: usize = 397;
    pub const READLINKAT: usize = 332;
    pub const OPENAT2: usize = 437;
}

// 386 (arch/x86/entry/syscalls/syscall_32.tbl), with the `*32` ID calls as on arm.
#[cfg(target_arch = "x86")]
mod nr {
    pub const READ: usize = 3;
    pub const WRITE: usize = 4;
    pub const CLOSE: usize = 6;
    pub const RT_SIGACTION: usize = 174;
    pub const IOCTL: usize = 54;
    pub const SETPGID: usize = 57;
    pub const RT_SIGPROCMASK: usize = 175;
    pub const GETPID: usize = 20;
    pub const CLONE: usize = 120;
    pub const EXECVE: usize = 11;
    pub const WAIT4: usize = 114;
    pub const KILL: usize = 37;
    pub const FSYNC: usize = 118;
    pub const FCHMOD: usize = 94;
    pub const GETGROUPS: usize = 205; // getgroups32
    pub const SETGROUPS: usize = 206; // setgroups32
    pub const SETRESUID: usize = 208; // setresuid32
    pub const GETRESUID: usize = 209; // getresuid32
    pub const SETRESGID: usize = 210; // setresgid32
    pub const GETRESGID: usize = 211; // getresgid32
    pub const CAPGET: usize = 184;
    pub const CAPSET: usize = 185;
    pub const RT_SIGTIMEDWAIT: usize = 177;
    pub const PRCTL: usize = 172;
    pub const GETDENTS64: usize = 220;
    pub const EXIT_GROUP: usize = 252;
    pub const OPENAT: usize = 295;
    pub const MKDIRAT: usize = 296;
    pub const FCHOWNAT: usize = 298;
    pub const UNLINKAT: usize = 301;
    pub const RENAMEAT2: usize = 353;
    pub const STATX: usize = 383;
    pub const READLINKAT: usize = 305;
    pub const OPENAT2: usize = 437;
}

// ppc64le (arch/powerpc/kernel/syscalls/syscall.tbl, 64-bit).
#[cfg(target_arch = "powerpc64")]
mod nr {
    pub const READ: usize = 3;
    pub const WRITE: usize = 4;
    pub const CLOSE: usize = 6;
    pub const RT_SIGACTION: usize = 173;
    pub const IOCTL: usize = 54;
    pub const SETPGID: usize = 57;
    pub const RT_SIGPROCMASK: usize = 174;
    pub const GETPID: usize = 20;
    pub const CLONE: usize = 120;
    pub const EXECVE: usize = 11;
    pub const WAIT4: usize = 114;
    pub const KILL: usize = 37;
    pub const FSYNC: usize = 118;
    pub const FCHMOD: usize = 94;
    pub const GETGROUPS: usize = 80;
    pub const SETGROUPS: usize = 81;
    pub const SETRESUID: usize = 164;
    pub const GETRESUID: usize = 165;
    pub const SETRESGID: usize = 169;
    pub const GETRESGID: usize = 170;
    pub const CAPGET: usize = 183;
    pub const CAPSET: usize = 184;
    pub const RT_SIGTIMEDWAIT: usize = 176;
    pub const PRCTL: usize = 171;
    pub const GETDENTS64: usize = 202;
    pub const EXIT_GROUP: usize = 234;
    pub const OPENAT: usize = 286;
    pub const MKDIRAT: usize = 287;
    pub const FCHOWNAT: usize = 289;
    pub const UNLINKAT: usize = 292;
    pub const RENAMEAT2: usize = 357;
    pub const STATX: usize = 383;
    pub const READLINKAT: usize = 296;
    pub const OPENAT2: usize = 437;
}

// s390x (arch/s390/kernel/syscalls/syscall.tbl, 64-bit: its plain ID calls
// take 32-bit IDs).
#[cfg(target_arch = "s390x")]
mod nr {
    pub const READ: usize = 3;
    pub const WRITE: usize = 4;
    pub const CLOSE: usize = 6;
    pub const RT_SIGACTION: usize = 174;
    pub const IOCTL: usize = 54;
    pub const SETPGID: usize = 57;
    pub const RT_SIGPROCMASK: usize = 175;
    pub const GETPID: usize = 20;
    pub const CLONE: usize = 120;
    pub const EXECVE: usize = 11;
    pub const WAIT4: usize = 114;
    pub const KILL: usize = 37;
    pub const FSYNC: usize = 118;
    pub const FCHMOD: usize = 94;
    pub const GETGROUPS: usize = 205;
    pub const SETGROUPS: usize = 206;
    pub const SETRESUID: usize = 208;
    pub const GETRESUID: usize = 209;
    pub const SETRESGID: usize = 210;
    pub const GETRESGID: usize = 211;
    pub const CAPGET: usize = 184;
    pub const CAPSET: usize = 185;
    pub const RT_SIGTIMEDWAIT: usize = 177;
    pub const PRCTL: usize = 172;
    pub const GETDENTS64: usize = 220;
    pub const EXIT_GROUP: usize = 248;
    pub const OPENAT: usize = 288;
    pub const MKDIRAT: usize = 289;
    pub const FCHOWNAT: usize = 291;
    pub const UNLINKAT: usize = 294;
    pub const RENAMEAT2: usize = 347;
    pub const STATX: usize = 379;
    pub const READLINKAT: usize = 298;
    pub const OPENAT2: usize = 437;
}

/// The kernel's error number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub u16);

pub const EPERM: Errno = Errno(1);
pub const ENOENT: Errno = Errno(2);
pub const EINTR: Errno = Errno(4);
pub const EACCES: Errno = Errno(13);
pub const EEXIST: Errno = Errno(17);
pub const EXDEV: Errno = Errno(18);
pub const ENOTDIR: Errno = Errno(20);
pub const EINVAL: Errno = Errno(22);
pub const EROFS: Errno = Errno(30);
pub const ENAMETOOLONG: Errno = Errno(36);
pub const ENOSYS: Errno = Errno(38);
pub const ELOOP: Errno = Errno(40);

impl Errno {
    /// strerror(3) for the errors the step-down can meet; others by number.
    pub fn text(self) -> Option<&'static [u8]> {
        // One string of (number byte, text, NUL): a table of slices would cost
        // 16 bytes a row in every image.
        let mut rest = ERRNO_TEXT;
        while let [n, tail @ ..] = rest {
            let end = tail.iter().position(|b| *b == 0)?;
            if u16::from(*n) == self.0 {
                return Some(&tail[..end]);
            }
            rest = &tail[end + 1..];
        }
        None
    }
}

const ERRNO_TEXT: &[u8] = b"\x01operation not permitted\0\
    \x02no such file or directory\0\
    \x05input/output error\0\
    \x07argument list too long\0\
    \x08exec format error\0\
    \x0cout of memory\0\
    \x0dpermission denied\0\
    \x11file exists\0\
    \x12on another mount\0\
    \x14not a directory\0\
    \x15is a directory\0\
    \x16invalid argument\0\
    \x18too many open files\0\
    \x1atext file busy\0\
    \x1cno space left on device\0\
    \x1eread-only file system\0\
    \x24file name too long\0\
    \x28too many levels of symbolic links\0\
    \x7adisk quota exceeded\0";

pub type Result<T> = core::result::Result<T, Errno>;

// The arguments travel in registers up to here (an array would be built in
// memory at every call site: a kilobyte of the binary).
#[cfg(target_arch = "x86_64")]
#[inline(never)]
unsafe fn syscall(
    n: usize,
    a0: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
) -> isize {
    let ret: isize;
    core::arch::asm!(
        "syscall",
        inlateout("rax") n as isize => ret,
        in("rdi") a0, in("rsi") a1, in("rdx") a2,
        in("r10") a3, in("r8") a4, in("r9") a5,
        lateout("rcx") _, lateout("r11") _,
        options(nostack),
    );
    ret
}

#[cfg(target_arch = "aarch64")]
#[inline(never)]
unsafe fn syscall(
    n: usize,
    a0: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
) -> isize {
    let ret: isize;
    core::arch::asm!(
        "svc 0",
        in("x8") n,
        inlateout("x0") a0 as isize => ret,
        in("x1") a1, in("x2") a2, in("x3") a3, in("x4") a4, in("x5") a5,
        options(nostack),
    );
    ret
}

#[cfg(target_arch = "arm")]
#[inline(never)]
unsafe fn syscall(
    n: usize,
    a0: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
) -> isize {
    let ret: isize;
    core::arch::asm!(
        "svc 0",
        in("r7") n,
        inlateout("r0") a0 as isize => ret,
        in("r1") a1, in("r2") a2, in("r3") a3, in("r4") a4, in("r5") a5,
        options(nostack),
    );
    ret
}

#[cfg(target_arch = "riscv64")]
#[inline(never)]
unsafe fn syscall(
    n: usize,
    a0: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
) -> isize {
    let ret: isize;
    core::arch::asm!(
        "ecall",
        in("a7") n,
        inlateout("a0") a0 as isize => ret,
        in("a1") a1, in("a2") a2, in("a3") a3, in("a4") a4, in("a5") a5,
        options(nostack),
    );
    ret
}

// 386: int 0x80 with the arguments in ebx, ecx, edx, esi, edi, ebp. esi and
// ebp are LLVM's own there (base and frame pointer) and cannot be operands,
// so the arguments come in memory and those two are saved by hand.
#[cfg(target_arch = "x86")]
#[inline(never)]
unsafe fn syscall(
    n: usize,
    a0: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
) -> isize {
    let args = [a0, a1, a2, a3, a4, a5];
    let ret: isize;
    core::arch::asm!(
        "push esi",
        "push ebp",
        "mov ebx, [ecx]",
        "mov edx, [ecx + 8]",
        "mov esi, [ecx + 12]",
        "mov edi, [ecx + 16]",
        "mov ebp, [ecx + 20]",
        "mov ecx, [ecx + 4]",
        "int 0x80",
        "pop ebp",
        "pop esi",
        inlateout("eax") n as isize => ret,
        inlateout("ecx") args.as_ptr() => _,
        lateout("ebx") _, lateout("edx") _, lateout("edi") _,
    );
    ret
}

// ppc64le: sc, number in r0, arguments in r3-r8. An error sets cr0's
// summary-overflow bit and leaves errno positive in r3: made -errno here.
#[cfg(target_arch = "powerpc64")]
#[inline(never)]
unsafe fn syscall(
    n: usize,
    a0: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
) -> isize {
    let ret: isize;
    core::arch::asm!(
        "sc",
        "bns 1f",
        "neg 3, 3",
        "1:",
        inlateout("r0") n => _,
        inlateout("r3") a0 as isize => ret,
        inlateout("r4") a1 => _, inlateout("r5") a2 => _, inlateout("r6") a3 => _,
        inlateout("r7") a4 => _, inlateout("r8") a5 => _,
        lateout("r9") _, lateout("r10") _, lateout("r11") _, lateout("r12") _,
        lateout("cr0") _, lateout("ctr") _, lateout("xer") _,
        options(nostack),
    );
    ret
}

#[cfg(target_arch = "s390x")]
#[inline(never)]
unsafe fn syscall(
    n: usize,
    a0: usize,
    a1: usize,
    a2: usize,
    a3: usize,
    a4: usize,
    a5: usize,
) -> isize {
    let ret: isize;
    core::arch::asm!(
        "svc 0",
        in("r1") n,
        inlateout("r2") a0 as isize => ret,
        in("r3") a1, in("r4") a2, in("r5") a3, in("r6") a4, in("r7") a5,
        options(nostack),
    );
    ret
}

#[inline(always)]
fn call(n: usize, a: [usize; 6]) -> Result<usize> {
    let ret = unsafe { syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if (-4095..0).contains(&ret) {
        Err(Errno(-ret as u16))
    } else {
        Ok(ret as usize)
    }
}

#[inline(always)]
fn call0(n: usize, a: [usize; 6]) -> Result<()> {
    call(n, a).map(drop)
}

fn ptr<T>(p: *const T) -> usize {
    p as usize
}

pub const AT_FDCWD: i32 = -100;
pub const AT_SYMLINK_NOFOLLOW: usize = 0x100;
pub const AT_EMPTY_PATH: usize = 0x1000;
pub const O_NONBLOCK: usize = 0o4000;
pub const O_PATH: usize = 0o10000000;
pub const O_RDONLY: usize = 0;
pub const O_WRONLY: usize = 1;
pub const O_CREAT: usize = 0o100;
pub const O_EXCL: usize = 0o200;
pub const O_CLOEXEC: usize = 0o2000000;
#[cfg(not(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc64"
)))]
pub const O_DIRECTORY: usize = 0o200000;
#[cfg(not(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc64"
)))]
pub const O_NOFOLLOW: usize = 0o400000;
// arm, arm64 and powerpc have their own values for these two (their uapi/asm/fcntl.h).
#[cfg(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc64"
))]
pub const O_DIRECTORY: usize = 0o40000;
#[cfg(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc64"
))]
pub const O_NOFOLLOW: usize = 0o100000;

pub const S_IFMT: u16 = 0o170000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFLNK: u16 = 0o120000;
pub const S_IFREG: u16 = 0o100000;

/// A file descriptor, closed on drop.
pub struct Fd(pub i32);

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = call0(nr::CLOSE, [self.0 as usize, 0, 0, 0, 0, 0]);
    }
}

pub fn openat(dir: i32, path: &CStr, flags: usize, mode: u32) -> Result<Fd> {
    let fd = call(
        nr::OPENAT,
        [
            dir as usize,
            ptr(path.as_ptr()),
            flags | O_CLOEXEC,
            mode as usize,
            0,
            0,
        ],
    )?;
    Ok(Fd(fd as i32))
}

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;

/// openat2(2): `path` resolved under `resolve` rules (ENOSYS before Linux 5.6).
pub fn openat2(dir: i32, path: &CStr, flags: usize, resolve: u64) -> Result<Fd> {
    // struct open_how: flags, mode, resolve.
    let how = [(flags | O_CLOEXEC) as u64, 0, resolve];
    let fd = call(
        nr::OPENAT2,
        [
            dir as usize,
            ptr(path.as_ptr()),
            ptr(how.as_ptr()),
            core::mem::size_of_val(&how),
            0,
            0,
        ],
    )?;
    Ok(Fd(fd as i32))
}

/// readlinkat(2): the link's target, in `buf`.
pub fn readlinkat(dir: i32, path: &CStr, buf: &mut [u8]) -> Result<usize> {
    call(
        nr::READLINKAT,
        [
            dir as usize,
            ptr(path.as_ptr()),
            ptr(buf.as_mut_ptr()),
            buf.len(),
            0,
            0,
        ],
    )
}

pub fn read(fd: &Fd, buf: &mut [u8]) -> Result<usize> {
    call(
        nr::READ,
        [fd.0 as usize, ptr(buf.as_mut_ptr()), buf.len(), 0, 0, 0],
    )
}

pub fn write(fd: i32, buf: &[u8]) -> Result<usize> {
    call(
        nr::WRITE,
        [fd as usize, ptr(buf.as_ptr()), buf.len(), 0, 0, 0],
    )
}

pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// struct statx; only the fields the step-down reads are named.
#[repr(C)]
struct Statx {
    mask: u32,
    _blksize: u32,
    _attributes: u64,
    nlink: u32,
    uid: u32,
    gid: u32,
    mode: u16,
    _pad: u16,
    _ino_size_blocks_attrmask_times: [u64; 12],
    _rdev: [u32; 2],
    dev: [u32; 2],
    mnt_id: u64,
    _rest: [u64; 13],
}

const STATX_MNT_ID: u32 = 0x1000;
const STATX_WANTED: usize = 0x1f | STATX_MNT_ID as usize; // type, mode, nlink, uid, gid, mount id

/// What the step-down needs to know about a file.
#[derive(Clone, Copy)]
pub struct Stat {
    pub mode: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device and mount ID (0 when the kernel predates STATX_MNT_ID).
    pub mount: ([u32; 2], u64),
}

impl Stat {
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }
    pub fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
}

pub fn statx(dir: i32, path: &CStr, flags: usize) -> Result<Stat> {
    let mut st = core::mem::MaybeUninit::<Statx>::zeroed();
    call0(
        nr::STATX,
        [
            dir as usize,
            ptr(path.as_ptr()),
            flags,
            STATX_WANTED,
            ptr(st.as_mut_ptr()),
            0,
        ],
    )?;
    // Safety: zeroed is a valid Statx (plain integers), and the kernel filled it.
    let st = unsafe { st.assume_init() };
    let mnt_id = if st.mask & STATX_MNT_ID != 0 {
        st.mnt_id
    } else {
        0
    };
    Ok(Stat {
        mode: st.mode,
        nlink: st.nlink,
        uid: st.uid,
        gid: st.gid,
        mount: (st.dev, mnt_id),
    })
}

/// fstat(2) of any descriptor, O_PATH ones included.
pub fn fstat(fd: &Fd) -> Result<Stat> {
    statx(fd.0, c"", AT_EMPTY_PATH)
}

pub fn getdents64(fd: &Fd, buf: &mut [u8]) -> Result<usize> {
    call(
        nr::GETDENTS64,
        [fd.0 as usize, ptr(buf.as_mut_ptr()), buf.len(), 0, 0, 0],
    )
}

pub fn fchownat(dir: i32, path: &CStr, uid: u32, gid: u32, flags: usize) -> Result<()> {
    call0(
        nr::FCHOWNAT,
        [
            dir as usize,
            ptr(path.as_ptr()),
            uid as usize,
            gid as usize,
            flags,
            0,
        ],
    )
}

/// fchown(2) of any descriptor, O_PATH ones included (fchown itself refuses those).
pub fn fchown(fd: &Fd, uid: u32, gid: u32) -> Result<()> {
    fchownat(fd.0, c"", uid, gid, AT_EMPTY_PATH)
}

pub fn fchmod(fd: &Fd, mode: u32) -> Result<()> {
    call0(nr::FCHMOD, [fd.0 as usize, mode as usize, 0, 0, 0, 0])
}

pub fn fsync(fd: &Fd) -> Result<()> {
    call0(nr::FSYNC, [fd.0 as usize, 0, 0, 0, 0, 0])
}

pub fn mkdirat(dir: &Fd, name: &CStr, mode: u32) -> Result<()> {
    call0(
        nr::MKDIRAT,
        [dir.0 as usize, ptr(name.as_ptr()), mode as usize, 0, 0, 0],
    )
}

/// renameat(2) within one directory.
pub fn renameat(dir: &Fd, from: &CStr, to: &CStr) -> Result<()> {
    let d = dir.0 as usize;
    call0(
        nr::RENAMEAT2,
        [d, ptr(from.as_ptr()), d, ptr(to.as_ptr()), 0, 0],
    )
}

pub fn unlinkat(dir: &Fd, name: &CStr) -> Result<()> {
    call0(
        nr::UNLINKAT,
        [dir.0 as usize, ptr(name.as_ptr()), 0, 0, 0, 0],
    )
}

fn id(n: usize) -> u32 {
    call(n, [0; 6]).unwrap_or(u32::MAX as usize) as u32
}
pub fn pid() -> u32 {
    id(nr::GETPID)
}

fn get_res(n: usize) -> Result<[u32; 3]> {
    let mut ids = [0u32; 3];
    let p = ids.as_mut_ptr();
    call0(
        n,
        [
            ptr(p),
            ptr(p.wrapping_add(1)),
            ptr(p.wrapping_add(2)),
            0,
            0,
            0,
        ],
    )?;
    Ok(ids)
}
/// (real, effective, saved) user IDs.
pub fn resuid() -> Result<[u32; 3]> {
    get_res(nr::GETRESUID)
}
/// (real, effective, saved) group IDs.
pub fn resgid() -> Result<[u32; 3]> {
    get_res(nr::GETRESGID)
}
pub fn set_all_uids(uid: u32) -> Result<()> {
    let u = uid as usize;
    call0(nr::SETRESUID, [u, u, u, 0, 0, 0])
}
pub fn set_all_gids(gid: u32) -> Result<()> {
    let g = gid as usize;
    call0(nr::SETRESGID, [g, g, g, 0, 0, 0])
}
pub fn set_groups(groups: &[u32]) -> Result<()> {
    call0(
        nr::SETGROUPS,
        [groups.len(), ptr(groups.as_ptr()), 0, 0, 0, 0],
    )
}
/// The supplementary groups, into `buf`.
pub fn groups(buf: &mut [u32]) -> Result<&[u32]> {
    let n = call(
        nr::GETGROUPS,
        [buf.len(), ptr(buf.as_mut_ptr()), 0, 0, 0, 0],
    )?;
    Ok(&buf[..n])
}

pub const PR_CAPBSET_READ: usize = 23;
pub const PR_CAPBSET_DROP: usize = 24;
pub const PR_GET_SECUREBITS: usize = 27;
pub const SECBIT_NOROOT: usize = 1;
pub const PR_SET_CHILD_SUBREAPER: usize = 36;
pub const PR_SET_NO_NEW_PRIVS: usize = 38;
pub const PR_GET_NO_NEW_PRIVS: usize = 39;
pub const PR_CAP_AMBIENT: usize = 47;
pub const PR_CAP_AMBIENT_IS_SET: usize = 1;

pub fn prctl(option: usize, arg: usize, arg2: usize) -> Result<usize> {
    call(nr::PRCTL, [option, arg, arg2, 0, 0, 0])
}

pub const CAP_SETGID: u32 = 6;
pub const CAP_SETUID: u32 = 7;
pub const CAP_SETPCAP: u32 = 8;

/// One 64-bit capability set per kind (the kernel's two 32-bit halves joined).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

const CAP_V3: u32 = 0x2008_0522;

pub fn capget() -> Result<Caps> {
    let header = [CAP_V3, 0];
    let mut data = [[0u32; 3]; 2];
    call0(
        nr::CAPGET,
        [ptr(header.as_ptr()), ptr(data.as_mut_ptr()), 0, 0, 0, 0],
    )?;
    let join = |i: usize| data[0][i] as u64 | (data[1][i] as u64) << 32;
    Ok(Caps {
        effective: join(0),
        permitted: join(1),
        inheritable: join(2),
    })
}

pub fn capset(caps: Caps) -> Result<()> {
    let header = [CAP_V3, 0];
    let split = |set: u64| [set as u32, (set >> 32) as u32];
    let (e, p, i) = (
        split(caps.effective),
        split(caps.permitted),
        split(caps.inheritable),
    );
    let data = [[e[0], p[0], i[0]], [e[1], p[1], i[1]]];
    call0(
        nr::CAPSET,
        [ptr(header.as_ptr()), ptr(data.as_ptr()), 0, 0, 0, 0],
    )
}

/// Replaces the process; returns only the error.
pub fn execve(path: &CStr, argv: *const *const c_char, envp: *const *const c_char) -> Errno {
    match call(
        nr::EXECVE,
        [ptr(path.as_ptr()), ptr(argv), ptr(envp), 0, 0, 0],
    ) {
        Err(e) => e,
        Ok(_) => EINVAL,
    }
}

pub fn exit(code: i32) -> ! {
    loop {
        let _ = call(nr::EXIT_GROUP, [code as usize, 0, 0, 0, 0, 0]);
    }
}

const SIGCHLD_FLAG: usize = 17;

/// fork(2): 0 in the child, the child's PID in the parent.
pub fn fork() -> Result<u32> {
    // s390 takes the new stack first and the flags second (CLONE_BACKWARDS2).
    #[cfg(target_arch = "s390x")]
    let args = [0, SIGCHLD_FLAG, 0, 0, 0, 0];
    #[cfg(not(target_arch = "s390x"))]
    let args = [SIGCHLD_FLAG, 0, 0, 0, 0, 0];
    call(nr::CLONE, args).map(|pid| pid as u32)
}

pub const WNOHANG: usize = 1;

/// wait4(2) on any child: Some((pid, status)), None when no child has exited yet.
pub fn wait_any(options: usize) -> Result<Option<(u32, i32)>> {
    let mut status = 0i32;
    let pid = call(
        nr::WAIT4,
        [usize::MAX, ptr(&mut status as *mut i32), options, 0, 0, 0],
    )?;
    Ok((pid != 0).then_some((pid as u32, status)))
}

pub fn kill(pid: u32, sig: u32) -> Result<()> {
    call0(nr::KILL, [pid as usize, sig as usize, 0, 0, 0, 0])
}

pub const SIG_BLOCK: usize = 0;
pub const SIG_SETMASK: usize = 2;

/// rt_sigprocmask(2) with a 64-bit set (bit N-1 is signal N); returns the old mask.
pub fn sigprocmask(how: usize, set: u64) -> Result<u64> {
    let mut old = 0u64;
    call0(
        nr::RT_SIGPROCMASK,
        [
            how,
            ptr(&set as *const u64),
            ptr(&mut old as *mut u64),
            8,
            0,
            0,
        ],
    )?;
    Ok(old)
}

/// Waits for one of the (blocked) signals in `set`; returns its number.
pub fn sigwait(set: u64) -> Result<u32> {
    call(
        nr::RT_SIGTIMEDWAIT,
        [ptr(&set as *const u64), 0, 0, 8, 0, 0],
    )
    .map(|s| s as u32)
}

/// Resets a signal to its default action (SIG_DFL, no flags, empty mask: all
/// zero in every architecture's struct sigaction).
pub fn default_action(sig: u32) -> Result<()> {
    let action = [0u64; 4];
    call0(
        nr::RT_SIGACTION,
        [sig as usize, ptr(action.as_ptr()), 0, 8, 0, 0],
    )
}

/// setpgid(0, 0): a new process group, led by this process.
pub fn setpgid() -> Result<()> {
    call0(nr::SETPGID, [0; 6])
}

#[cfg(not(target_arch = "powerpc64"))]
const TIOCSPGRP: usize = 0x5410;
// powerpc encodes it as _IOW('t', 118, int) (arch/powerpc/include/uapi/asm/ioctls.h).
#[cfg(target_arch = "powerpc64")]
const TIOCSPGRP: usize = 0x8004_7476;

/// tcsetpgrp(3): makes `pgid` the foreground group of the terminal on `fd`
/// (ENOTTY when there is none).
pub fn set_foreground(fd: i32, pgid: u32) -> Result<()> {
    call0(
        nr::IOCTL,
        [fd as usize, TIOCSPGRP, ptr(&pgid as *const u32), 0, 0, 0],
    )
}
