//! Image pull benchmark (issue 17): pull + unpack of a ~50 MB image (compressed; real binaries
//! and libraries of this host in four layers) from Debian's docker-registry on 127.0.0.1 into an
//! empty store with svcnet-images, against `skopeo copy docker://... oci:DIR` + `umoci unpack`
//! of the same image, same run, rounds alternating. Target: ratio ≤ 1.0×. Details:
//! bench/README.md.
//!
//! ```sh
//! apt-get install -y docker-registry skopeo umoci
//! cargo build --release -p svcnet-bench --bin image-pull-bench
//! ./target/release/image-pull-bench [--rounds 5] [--layer-mib 32]
//! ```

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use svcnet_bench::report;
use svcnet_images::testing::{self, Registry};
use svcnet_images::{Keyring, PullOptions, Puller, Registries, Store};

#[derive(Parser)]
struct Args {
    /// Rounds of each side (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Uncompressed MiB of files in each of the image's four layers.
    #[arg(long, default_value_t = 32)]
    layer_mib: u64,
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

async fn svcnet_pull(image: &str, dir: &Path) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let puller = Puller::new(
        Store::open(dir)?,
        Registries::none(),
        PullOptions::default(),
    );
    puller.pull(image, &Keyring::empty()).await?;
    Ok(start.elapsed())
}

fn skopeo_umoci(image: &str, dir: &Path) -> anyhow::Result<Duration> {
    let layout = dir.join("oci");
    let bundle = dir.join("bundle");
    let start = Instant::now();
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{image}"))
        .arg(format!("oci:{}:bench", layout.display())))?;
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:bench", layout.display()))
        .arg(&bundle))?;
    Ok(start.elapsed())
}

fn du(dir: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(dir).output().ok();
    out.and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
    .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    report::header();
    for tool in ["skopeo", "umoci"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("{tool} is not installed (apt-get install -y skopeo umoci)");
        }
    }
    if !testing::available() {
        bail!(
            "{} is not installed (apt-get install -y docker-registry)",
            testing::DOCKER_REGISTRY
        );
    }
    let registry = Registry::start()?;
    let layer_bytes = args.layer_mib << 20;
    let built = tokio::task::spawn_blocking(move || testing::bench_image(layer_bytes)).await??;
    registry.push(&built, "library/bench", "v1").await?;
    let compressed: usize = built.layers.iter().map(|l| l.blob.len()).sum();
    let uncompressed: usize = built.layers.iter().map(|l| l.tar.len()).sum();
    let image = format!("{}/library/bench:v1", registry.host());
    println!(
        "Image {image}: 4 gzip layers, {:.1} MB compressed, {:.1} MB of tar uncompressed.\n",
        compressed as f64 / 1e6,
        uncompressed as f64 / 1e6
    );

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut our_disk, mut their_disk) = (0, 0);
    for round in 0..args.rounds {
        let a = tempfile::tempdir_in("/var/tmp")?;
        let b = tempfile::tempdir_in("/var/tmp")?;
        // Alternate which goes first, so neither always finds the registry's files warmer.
        let (t_ours, t_theirs) = if round % 2 == 0 {
            let o = svcnet_pull(&image, a.path()).await?;
            (o, skopeo_umoci(&image, b.path())?)
        } else {
            let t = skopeo_umoci(&image, b.path())?;
            (svcnet_pull(&image, a.path()).await?, t)
        };
        our_disk = du(a.path());
        their_disk = du(b.path());
        println!(
            "round {round}: svcnet-images {}, skopeo + umoci {}",
            report::ms(t_ours, 0),
            report::ms(t_theirs, 0)
        );
        ours.push(t_ours);
        theirs.push(t_theirs);
    }
    let (o, t) = (report::median(ours), report::median(theirs));
    println!();
    println!("| measure | svcnet-images | skopeo copy + umoci unpack | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| pull + unpack, median of {} | {} | {} | {} |",
        args.rounds,
        report::ms(o, 0),
        report::ms(t, 0),
        report::ratio(o.as_secs_f64(), t.as_secs_f64(), 2)
    );
    println!(
        "| disk after (blobs + unpacked) | {:.1} MB | {:.1} MB | |",
        our_disk as f64 / 1e6,
        their_disk as f64 / 1e6
    );
    Ok(())
}
