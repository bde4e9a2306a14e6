//! `svcnet images`: the image store outside a running cluster — build the seeds' images on an
//! air-gapped machine, import archives, pull, list.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use svcnet_images::{Keyring, PullOptions, Puller, Registries, Store};

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Write the seeds' images (busybox.tar, nginx.tar: oci-archives named
    /// docker.io/library/busybox:latest, docker.io/library/nginx:latest and :1.23.1) built from
    /// this machine's busybox-static and nginx-light, and scaling.tar
    /// (quay.io/mask365/scaling:latest: agnhost from this svcnet binary); put them in
    /// <data-dir>/images/.
    BuildSeeds {
        #[arg(long)]
        out: PathBuf,
    },
    /// Import every docker-archive / oci-archive in DIR into the store (as at start).
    Import {
        dir: PathBuf,
        /// The store (`svcnet up` uses <data-dir>/images, where archives are also dropped).
        #[arg(long, default_value = "./.svcnet/images")]
        root: PathBuf,
    },
    /// Pull an image into the store.
    Pull {
        image: String,
        #[arg(long, default_value = "./.svcnet/images")]
        root: PathBuf,
        /// A registries.yaml in k3s's format (mirrors, rewrites, auth, TLS); k3s's flag name.
        #[arg(long)]
        private_registry: Option<PathBuf>,
        /// Pull from mirrors only, never from a mirrored registry itself (k3s's flag).
        #[arg(long)]
        disable_default_registry_endpoint: bool,
    },
    /// List the images in the store.
    List {
        #[arg(long, default_value = "./.svcnet/images")]
        root: PathBuf,
    },
}

pub async fn run(cmd: ImagesCommand) -> anyhow::Result<()> {
    match cmd {
        ImagesCommand::BuildSeeds { out } => {
            let out2 = out.clone();
            let written = tokio::task::spawn_blocking(move || {
                let svcnet = std::env::current_exe()?;
                svcnet_images::build::seeds::build_seeds(&out2, Some(&svcnet))
            })
            .await?
            .with_context(|| format!("building the seeds' images into {}", out.display()))?;
            for path in written {
                println!("{}", path.display());
            }
        }
        ImagesCommand::Import { dir, root } => {
            let store = Store::open(&root)?;
            let report = tokio::task::spawn_blocking(move || store.import_archives(&dir)).await?;
            for image in &report.images {
                println!("{} {}", image.id, image.repo_tags.join(","));
            }
            if let Some(e) = report.errors.first() {
                anyhow::bail!("{e}");
            }
        }
        ImagesCommand::Pull {
            image,
            root,
            private_registry,
            disable_default_registry_endpoint,
        } => {
            let registries = match private_registry {
                Some(path) => Registries::load(&path)?,
                None => Registries::none(),
            }
            .disable_default_endpoint(disable_default_registry_endpoint);
            let puller = Puller::new(Store::open(&root)?, registries, PullOptions::default());
            let image = puller.pull(&image, &Keyring::empty()).await?;
            println!("{} {}", image.id, image.image_ref());
        }
        ImagesCommand::List { root } => {
            for image in Store::open(&root)?.list() {
                println!(
                    "{}\t{}\t{}",
                    image.repo_tags.join(","),
                    image.id,
                    image.size
                );
            }
        }
    }
    Ok(())
}
