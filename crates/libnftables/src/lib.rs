//! libnftables — the library behind `nft` — used in-process.
//!
//! Running `nft -f` costs a process, its dynamic loading, a fresh read of the kernel's ruleset
//! and, when its netlink socket closes, an RCU grace period: about 20 ms for a two-line change
//! (NOTES.md, bench/RESULTS.md). A context kept open does the same transaction in about 0.3 ms:
//! same parser, same netlink, same error messages. The library is loaded at run time
//! (`libnftables.so.1`, Debian's `libnftables1`, which `nftables` depends on); callers fall back
//! to the `nft` command when it is missing.
//!
//! A context belongs to the network namespace its netlink socket was opened in, and is not
//! thread-safe, so each [`Nft`] owns one thread inside its namespace that holds the context and
//! runs the scripts sent to it, one at a time.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::mpsc;
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("libnftables is not available: {0}")]
    Unavailable(String),
    #[error("entering network namespace {netns}: {detail}")]
    Netns { netns: String, detail: String },
    /// The script was refused (nft's own message).
    #[error("{0}")]
    Refused(String),
    #[error("the libnftables thread is gone")]
    Gone,
    #[error("the script contains a NUL byte")]
    Nul,
}

type CtxNew = unsafe extern "C" fn(c_uint) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type CtxInt = unsafe extern "C" fn(*mut c_void) -> c_int;
type CtxBuf = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type CtxDryRun = unsafe extern "C" fn(*mut c_void, bool);
type RunBuf = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

/// The library's entry points (resolved once).
struct Api {
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    buffer_output: CtxInt,
    buffer_error: CtxInt,
    get_error: CtxBuf,
    set_dry_run: CtxDryRun,
    run: RunBuf,
    _lib: libloading::Library,
}

fn api() -> Result<&'static Api, Error> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(|| {
        // SAFETY: loading libnftables runs no initialisers with preconditions; the symbols are
        // looked up with the C signatures of nftables/libnftables.h (1.0.x), and the function
        // pointers stay valid because the library is kept in the same struct for the process's
        // life (the OnceLock is never dropped).
        unsafe {
            let lib = libloading::Library::new("libnftables.so.1").map_err(|e| e.to_string())?;
            let sym = |name: &[u8]| -> Result<*const c_void, String> {
                lib.get::<*const c_void>(name)
                    .map(|s| *s)
                    .map_err(|e| e.to_string())
            };
            Ok(Api {
                ctx_new: std::mem::transmute::<*const c_void, CtxNew>(sym(b"nft_ctx_new\0")?),
                ctx_free: std::mem::transmute::<*const c_void, CtxFree>(sym(b"nft_ctx_free\0")?),
                buffer_output: std::mem::transmute::<*const c_void, CtxInt>(sym(
                    b"nft_ctx_buffer_output\0",
                )?),
                buffer_error: std::mem::transmute::<*const c_void, CtxInt>(sym(
                    b"nft_ctx_buffer_error\0",
                )?),
                get_error: std::mem::transmute::<*const c_void, CtxBuf>(sym(
                    b"nft_ctx_get_error_buffer\0",
                )?),
                set_dry_run: std::mem::transmute::<*const c_void, CtxDryRun>(sym(
                    b"nft_ctx_set_dry_run\0",
                )?),
                run: std::mem::transmute::<*const c_void, RunBuf>(sym(
                    b"nft_run_cmd_from_buffer\0",
                )?),
                _lib: lib,
            })
        }
    })
    .as_ref()
    .map_err(|e| Error::Unavailable(e.clone()))
}

/// Whether libnftables can be loaded here.
pub fn available() -> bool {
    api().is_ok()
}

struct Job {
    script: CString,
    dry_run: bool,
    reply: mpsc::Sender<Result<(), Error>>,
}

/// A libnftables context inside one network namespace (see the crate docs).
pub struct Nft {
    jobs: mpsc::Sender<Job>,
}

/// The context, owned by its thread.
struct Ctx {
    api: &'static Api,
    ctx: *mut c_void,
}

impl Ctx {
    fn new(api: &'static Api) -> Result<Ctx, Error> {
        // SAFETY: nft_ctx_new(NFT_CTX_DEFAULT = 0) returns an owned context or NULL; the buffer
        // calls only switch where the context prints.
        unsafe {
            let ctx = (api.ctx_new)(0);
            if ctx.is_null() {
                return Err(Error::Unavailable("nft_ctx_new failed".into()));
            }
            (api.buffer_output)(ctx);
            (api.buffer_error)(ctx);
            Ok(Ctx { api, ctx })
        }
    }

    fn run(&mut self, script: &CStr, dry_run: bool) -> Result<(), Error> {
        // SAFETY: `self.ctx` is a live context used only by this thread; `script` is a
        // NUL-terminated string that outlives the call; the error buffer is a NUL-terminated
        // string owned by the context, copied before the next call on it.
        unsafe {
            (self.api.set_dry_run)(self.ctx, dry_run);
            let rc = (self.api.run)(self.ctx, script.as_ptr());
            let err = (self.api.get_error)(self.ctx);
            let msg = if err.is_null() {
                String::new()
            } else {
                CStr::from_ptr(err).to_string_lossy().trim().to_string()
            };
            if rc != 0 {
                return Err(Error::Refused(if msg.is_empty() {
                    "nft refused the script".into()
                } else {
                    msg
                }));
            }
            Ok(())
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: the context is live and no longer used after this.
        unsafe { (self.api.ctx_free)(self.ctx) }
    }
}

impl Nft {
    /// A context in the named network namespace (`None`: this process's).
    pub fn open(netns: Option<&str>) -> Result<Nft, Error> {
        let api = api()?;
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), Error>>();
        let serve = move || {
            let mut ctx = match Ctx::new(api) {
                Ok(c) => {
                    let _ = ready_tx.send(Ok(()));
                    c
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            for job in rx {
                let _ = job.reply.send(ctx.run(&job.script, job.dry_run));
            }
        };
        match netns {
            Some(name) => {
                let ns = svcnet_netns::NetNs::open(name).map_err(|e| Error::Netns {
                    netns: name.into(),
                    detail: e.to_string(),
                })?;
                ns.spawn(serve).map_err(|e| Error::Netns {
                    netns: name.into(),
                    detail: e.to_string(),
                })?;
            }
            None => {
                std::thread::Builder::new()
                    .name("libnftables".into())
                    .spawn(serve)
                    .map_err(|e| Error::Unavailable(e.to_string()))?;
            }
        }
        ready_rx.recv().map_err(|_| Error::Gone)??;
        Ok(Nft { jobs })
    }

    fn submit(&self, script: &str, dry_run: bool) -> Result<(), Error> {
        let script = CString::new(script).map_err(|_| Error::Nul)?;
        let (reply, rx) = mpsc::channel();
        self.jobs
            .send(Job {
                script,
                dry_run,
                reply,
            })
            .map_err(|_| Error::Gone)?;
        rx.recv().map_err(|_| Error::Gone)?
    }

    /// Run `script` as `nft -f` would: one transaction.
    pub fn run(&self, script: &str) -> Result<(), Error> {
        self.submit(script, false)
    }

    /// Whether `script` would be accepted (`nft -c -f`), changing nothing.
    pub fn check(&self, script: &str) -> Result<(), Error> {
        self.submit(script, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use svcnet_netns::testing::{can_run, ScratchNetns};

    #[test]
    fn runs_scripts_in_its_namespace() {
        if !can_run(&[]) {
            return;
        }
        if !available() {
            eprintln!("skipped: needs libnftables");
            return;
        }
        let s = ScratchNetns::new("libnft").unwrap();
        let nft = Nft::open(Some(s.name())).unwrap();
        nft.run("table ip t {\n\tset s { type ipv4_addr; }\n}\n")
            .unwrap();
        nft.run("add element ip t s { 10.0.0.1 }\n").unwrap();
        // A refused script reports nft's message and changes nothing (one transaction). (From a
        // buffer, libnftables 1.0.6 quotes the script's first line under the message whichever
        // line it is about.)
        let err = nft
            .run("add element ip t s { 10.0.0.2 }\nadd element ip t nope { 10.0.0.3 }\n")
            .unwrap_err();
        assert!(
            err.to_string().contains("No such file or directory"),
            "{err}"
        );
        nft.check("add element ip t s { 10.0.0.4 }\n").unwrap();
        let listed = s.exec(&["nft", "list", "set", "ip", "t", "s"]).unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.contains("10.0.0.1"), "{listed}");
        assert!(!listed.contains("10.0.0.2"), "{listed}");
        assert!(!listed.contains("10.0.0.4"), "{listed}");
        // The table is in the scratch namespace, not in ours.
        let here = Nft::open(None).unwrap();
        assert!(here.run("list table ip t\n").is_err());
        assert!(nft.run("list table ip t\n").is_ok());
    }
}
