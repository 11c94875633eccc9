//! The privileges: refusing a setuid or file-capability start, the
//! capabilities the drop needs, clearing the capability sets, the drop
//! itself and the proof that it stuck. Any failure here is fatal: the
//! command never runs as root.

use crate::report::{error, error_e, error_with, Failed, Vals, NO};
use crate::target::sort_unique;
use crate::{report, sys, MAX_GROUPS};

/// A setuid/setgid bit or file capabilities would hand root to whoever runs
/// the binary; it must never be installed so. Told without a lookup of
/// /proc/self/exe (which cost more than the rest of the start): a setuid or
/// setgid bit that took effect shows in the IDs; file capabilities in the
/// kernel's AT_SECURE with a non-root caller holding capabilities that did
/// not come through the ambient set. AT_SECURE alone is not enough: an SELinux
/// domain transition without `noatsecure` (a runtime's policy may lack it)
/// sets it too, with nothing gained; and the capabilities of `podman run
/// --user N --cap-add ...` come through the ambient set, which the kernel
/// empties whenever it execs a program with file capabilities.
/// Returns the caller's UID and GID, read here once for the whole start (after
/// execve the saved IDs are the effective ones, which this makes the real ones).
pub(crate) fn refuse_secure_exec(secure: bool) -> report::Result<Caller> {
    // Two calls for the four IDs; an ID that cannot be read counts as raised.
    let ([uid, euid, _], [gid, egid, _]) = (
        sys::resuid().unwrap_or([0, u32::MAX, 0]),
        sys::resgid().unwrap_or([0, u32::MAX, 0]),
    );
    let ids_raised = uid != euid || gid != egid;
    let caps_raised = secure
        && uid != 0
        && caps_from_file(sys::capget(), |cap| {
            sys::prctl(sys::PR_CAP_AMBIENT, sys::PR_CAP_AMBIENT_IS_SET, cap) == Ok(1)
        });
    if ids_raised || caps_raised {
        return Err(error(
            b"refusing to run: started setuid, setgid or with file capabilities",
        ));
    }
    Ok(Caller { uid, gid })
}

#[derive(Clone, Copy)]
pub(crate) struct Caller {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Whether a non-root process holds capabilities (`caps`) that came from the
/// file, not through the ambient set (`ambient(cap)`: is cap in it). Without
/// file capabilities a non-root process's permitted set after execve is its
/// ambient set, so one capability tells.
pub(crate) fn caps_from_file(
    caps: sys::Result<sys::Caps>,
    ambient: impl Fn(usize) -> bool,
) -> bool {
    caps.map_or(true, |c| {
        c.permitted != 0 && !ambient(c.permitted.trailing_zeros() as usize)
    })
}

fn has_cap(caps: &sys::Caps, cap: u32) -> bool {
    caps.effective & (1 << cap) != 0
}

/// Without CAP_SETUID/CAP_SETGID (e.g. `--cap-drop=ALL`, Kubernetes' restricted
/// profile) the drop cannot work: say so before touching anything.
pub(crate) fn require_setid_caps() -> report::Result<()> {
    let caps = sys::capget().map_err(|e| error_e(b"capget failed%e", e))?;
    for (cap, name) in [
        (sys::CAP_SETUID, &b"CAP_SETUID"[..]),
        (sys::CAP_SETGID, b"CAP_SETGID"),
    ] {
        if !has_cap(&caps, cap) {
            return Err(error_with(
                b"cannot drop privileges: %s is missing; the command was not run",
                Vals { s: name, ..NO },
            ));
        }
    }
    Ok(())
}

/// Before the drop: empties the bounding set (what a later execve of a
/// setuid-root or file-capability program could regain) and the
/// inheritable and ambient sets (what would pass through execve). Returns
/// whether the bounding set was emptied (it needs CAP_SETPCAP).
fn clear_inheritable_caps(no_new_privs: bool) -> report::Result<bool> {
    let caps = sys::capget().map_err(|e| error_e(b"capget failed%e", e))?;
    if has_cap(&caps, sys::CAP_SETPCAP) {
        // Root's execve made the permitted set the bounding set plus the
        // inheritable one (unless SECBIT_NOROOT; the caller runs this as
        // root only), so with the inheritable set empty the bounding set is
        // known without reading it, one system call per capability.
        let known = caps.inheritable == 0
            && sys::prctl(sys::PR_GET_SECUREBITS, 0, 0).is_ok_and(|b| b & sys::SECBIT_NOROOT == 0);
        for cap in 0..64 {
            // Otherwise each is read first: a read costs a quarter of a drop
            // (which commits new credentials), and a container's set holds few.
            let held = if known {
                Ok(caps.permitted >> cap & 1)
            } else {
                sys::prctl(sys::PR_CAPBSET_READ, cap, 0).map(|b| b as u64)
            };
            match held {
                Ok(0) => {}
                Ok(_) => sys::prctl(sys::PR_CAPBSET_DROP, cap, 0)
                    .map(drop)
                    .map_err(|e| error_e(b"cannot clear the bounding set%e", e))?,
                Err(_) => break, // EINVAL: past the kernel's last capability
            }
        }
    } else if !no_new_privs {
        // With no_new_privs no execve can gain privileges, so the bounding set
        // is moot; without it, it is the last line.
        return Err(error(b"cannot clear the bounding set: CAP_SETPCAP is missing (needed with --allow-new-privs)"));
    }
    // The ambient set is never more than permitted ∩ inheritable (the kernel
    // keeps it so), so with the inheritable set empty it is empty too: no
    // PR_CAP_AMBIENT_CLEAR_ALL, which would commit new credentials for nothing.
    let bounding = has_cap(&caps, sys::CAP_SETPCAP);
    if caps.inheritable == 0 {
        return Ok(bounding); // capset would commit new credentials for nothing too
    }
    // Lowering the inheritable set lowers the ambient set with it.
    sys::capset(sys::Caps {
        inheritable: 0,
        ..caps
    })
    .map_err(|e| error_e(b"cannot clear inheritable capabilities%e", e))?;
    Ok(bounding)
}

/// setgroups → setresgid → setresuid, then proves the result. Order matters:
/// after setuid the process can no longer change its groups. `groups` is
/// sorted and free of duplicates. `from_root`: root drops to a user, so the
/// bounding, inheritable and ambient sets are cleared first.
pub(crate) fn drop_privileges(
    from_root: bool,
    uid: u32,
    gid: u32,
    groups: &[u32],
    no_new_privs: bool,
) -> report::Result<()> {
    let bounding_cleared = from_root && clear_inheritable_caps(no_new_privs)?;
    sys::set_groups(groups).map_err(|e| error_e(b"setgroups failed%e", e))?;
    sys::set_all_gids(gid).map_err(|e| {
        error_with(
            b"setresgid(%n) failed%e",
            Vals {
                n: gid,
                e: Some(e),
                ..NO
            },
        )
    })?;
    sys::set_all_uids(uid).map_err(|e| {
        error_with(
            b"setresuid(%n) failed%e",
            Vals {
                n: uid,
                e: Some(e),
                ..NO
            },
        )
    })?;

    let stuck = sys::resuid() == Ok([uid; 3]) && sys::resgid() == Ok([gid; 3]);
    if !stuck {
        return Err(not_stuck(b""));
    }
    let mut buf = [0u32; MAX_GROUPS + 1];
    let len = sys::groups(&mut buf)
        .map_err(|e| error_e(b"getgroups failed%e", e))?
        .len();
    let len = sort_unique(&mut buf[..len]);
    if buf[..len] != *groups {
        return Err(not_stuck(b": groups"));
    }
    // GID 0 asked for (`1000:0`, OpenShift's convention; or a passwd entry's
    // primary group) is no privilege regained: only a GID that was given up counts.
    if uid != 0 && (sys::set_all_uids(0).is_ok() || gid != 0 && sys::set_all_gids(0).is_ok()) {
        return Err(not_stuck(b": root regained"));
    }
    if no_new_privs {
        set_no_new_privs()?;
    }
    if uid != 0 && sys::capget() != Ok(sys::Caps::default()) {
        return Err(not_stuck(b": capabilities"));
    }
    // The other two sets, read back: the bounding set where it was emptied
    // (without CAP_SETPCAP it stays, moot under no_new_privs), the ambient
    // set always.
    for cap in 0..64 {
        let bounding = match sys::prctl(sys::PR_CAPBSET_READ, cap, 0) {
            Ok(held) => held,
            Err(_) => break, // EINVAL: past the kernel's last capability
        };
        if bounding_cleared && bounding != 0 {
            return Err(not_stuck(b": bounding set"));
        }
        if sys::prctl(sys::PR_CAP_AMBIENT, sys::PR_CAP_AMBIENT_IS_SET, cap) != Ok(0) {
            return Err(not_stuck(b": ambient set"));
        }
    }
    Ok(())
}

/// "privilege drop did not stick" and what did not: one copy of the words.
#[inline(never)]
pub(crate) fn not_stuck(what: &[u8]) -> Failed {
    error_with(b"privilege drop did not stick%s", Vals { s: what, ..NO })
}

pub(crate) fn set_no_new_privs() -> report::Result<()> {
    sys::prctl(sys::PR_SET_NO_NEW_PRIVS, 1, 0).map_err(|e| error_e(b"no_new_privs%e", e))?;
    if sys::prctl(sys::PR_GET_NO_NEW_PRIVS, 0, 0) != Ok(1) {
        return Err(not_stuck(b": no_new_privs"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::err_text;

    #[test]
    fn failed_checks_say_what_did_not_stick() {
        for (what, text) in [
            (&b""[..], "privilege drop did not stick"),
            (b": groups", "privilege drop did not stick: groups"),
        ] {
            assert_eq!(err_text::<()>(Err(not_stuck(what))), text);
        }
    }

    #[test]
    fn file_capabilities_told_from_ambient_ones() {
        let caps = |permitted| {
            Ok(sys::Caps {
                permitted,
                ..Default::default()
            })
        };
        let setid = 1 << sys::CAP_SETUID | 1 << sys::CAP_SETGID;
        // podman --user 1000 --cap-add SETUID,SETGID: in the ambient set.
        assert!(!caps_from_file(caps(setid), |c| c == sys::CAP_SETGID as usize));
        // A copy with file capabilities: the kernel emptied the ambient set.
        assert!(caps_from_file(caps(setid), |_| false));
        assert!(!caps_from_file(caps(0), |_| false));
        assert!(caps_from_file(Err(sys::Errno(1)), |_| true));
    }
}
