//! The handful of libc calls std does not wrap. glibc is linked statically, so
//! these resolve at link time; no libc is needed in the image.

use std::io;
use std::os::raw::{c_int, c_uint};

pub const CAP_SETGID: u32 = 6;
pub const CAP_SETUID: u32 = 7;
const PR_SET_NO_NEW_PRIVS: c_int = 38;
const PR_GET_NO_NEW_PRIVS: c_int = 39;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

extern "C" {
    fn getuid() -> c_uint;
    fn getgid() -> c_uint;
    fn geteuid() -> c_uint;
    fn getegid() -> c_uint;
    fn getresuid(r: *mut c_uint, e: *mut c_uint, s: *mut c_uint) -> c_int;
    fn getresgid(r: *mut c_uint, e: *mut c_uint, s: *mut c_uint) -> c_int;
    fn setresuid(r: c_uint, e: c_uint, s: c_uint) -> c_int;
    fn setresgid(r: c_uint, e: c_uint, s: c_uint) -> c_int;
    fn setgroups(size: usize, list: *const c_uint) -> c_int;
    fn getgroups(size: c_int, list: *mut c_uint) -> c_int;
    fn prctl(option: c_int, ...) -> c_int;
    fn capget(hdr: *mut CapHeader, data: *mut CapData) -> c_int;
}

fn check(rc: c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub fn uid() -> u32 {
    unsafe { getuid() }
}
pub fn gid() -> u32 {
    unsafe { getgid() }
}
pub fn euid() -> u32 {
    unsafe { geteuid() }
}
pub fn egid() -> u32 {
    unsafe { getegid() }
}

/// (real, effective, saved) user IDs.
pub fn resuid() -> io::Result<[u32; 3]> {
    let mut ids = [0u32; 3];
    let [r, e, s] = &mut ids;
    check(unsafe { getresuid(r, e, s) })?;
    Ok(ids)
}

/// (real, effective, saved) group IDs.
pub fn resgid() -> io::Result<[u32; 3]> {
    let mut ids = [0u32; 3];
    let [r, e, s] = &mut ids;
    check(unsafe { getresgid(r, e, s) })?;
    Ok(ids)
}

pub fn set_all_uids(uid: u32) -> io::Result<()> {
    check(unsafe { setresuid(uid, uid, uid) })
}

pub fn set_all_gids(gid: u32) -> io::Result<()> {
    check(unsafe { setresgid(gid, gid, gid) })
}

pub fn set_groups(groups: &[u32]) -> io::Result<()> {
    check(unsafe { setgroups(groups.len(), groups.as_ptr()) })
}

pub fn groups() -> io::Result<Vec<u32>> {
    let n = unsafe { getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut list = vec![0u32; n as usize];
    let n = unsafe { getgroups(n, list.as_mut_ptr()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    list.truncate(n as usize);
    Ok(list)
}

pub fn set_no_new_privs() -> io::Result<()> {
    check(unsafe { prctl(PR_SET_NO_NEW_PRIVS, 1u64, 0u64, 0u64, 0u64) })
}

pub fn no_new_privs() -> io::Result<bool> {
    let rc = unsafe { prctl(PR_GET_NO_NEW_PRIVS, 0u64, 0u64, 0u64, 0u64) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc == 1)
    }
}

/// Whether capability `cap` (< 32) is in this process's effective set.
pub fn has_effective_cap(cap: u32) -> io::Result<bool> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    check(unsafe { capget(&mut hdr, data.as_mut_ptr()) })?;
    Ok(data[0].effective & (1 << cap) != 0)
}
