//! B4: `roleout install` of a suite of 200 components whose command is
//! `true`, read from an offline mirror of envelopes signed with a real
//! builder key, against one `sh` running the same 200 commands. The
//! difference over 200 is what Roleout adds per component (journal,
//! verification, planning, reports).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use ring::signature::Ed25519KeyPair;

use roleout_installer::engine::identity::{Enrolment, Identity};
use roleout_model::descriptor::{self, Descriptor};
use roleout_model::ids::{MachineId, Sha256, SuiteId};
use roleout_model::product::ProductModel;
use roleout_model::protocol::signing::BuilderKey;
use roleout_model::protocol::{
    Customization, MachineObject, SignedContent, SignedEnvelope, SuiteDelivery, Timestamp,
};
use roleout_model::resolve::resolve_suite;
use roleout_model::role::EffectiveRoles;
use roleout_model::suite::{OnFailure, Suite, SuitePolicy};
use roleout_model::version::Version;

use crate::bench::server::sibling;
use crate::bench::{Row, median, millis, time};

/// Components in the suite.
const COMPONENTS: usize = 200;

const MACHINE: &str = "bench-installer";
const SUITE: &str = "bench-true";

/// An offline mirror directory (`--from`) with the builder key that signs
/// what goes in it.
pub(crate) struct Mirror {
    _temp: tempfile::TempDir,
    /// A scratch directory next to the mirror.
    pub(crate) base: PathBuf,
    /// The mirror: `suites/SUITE.json`, `payloads/SHA256`.
    pub(crate) mirror: PathBuf,
    builder: roleout_model::protocol::signing::PinnedKey,
    signer: Ed25519KeyPair,
}

/// A product descriptor parsed into its model (default versions).
pub(crate) fn product_model(xml: &str) -> anyhow::Result<ProductModel> {
    let parsed = descriptor::parse("bench.xml", xml.as_bytes());
    let errors: Vec<String> = parsed.errors().map(ToString::to_string).collect();
    if !errors.is_empty() {
        bail!("a benchmark product is invalid: {}", errors.join("; "));
    }
    let Some(Descriptor::Product(source)) = parsed.descriptor else {
        bail!("a benchmark product is not a product descriptor");
    };
    Ok(source.select(&EffectiveRoles::from_ranks([]))?.0)
}

fn product(index: usize) -> anyhow::Result<ProductModel> {
    let id = format!("bench-true-{index:03}");
    product_model(&format!(
        r#"<product xmlns="urn:roleout:descriptor:1" id="{id}" version="1.0">
  <description vendor="Roleout"><name lang="en">{id}</name><summary lang="en">does nothing</summary></description>
  <install kind="script" timeout="60"><arg>true</arg></install>
</product>"#
    ))
}

/// A suite of `products`.
pub(crate) fn suite(id: &str, version: &str, products: Vec<ProductModel>) -> anyhow::Result<Suite> {
    Ok(Suite {
        id: SuiteId::new(id)?,
        version: Version::new(version)?,
        description: Default::default(),
        capabilities: Default::default(),
        categories: Vec::new(),
        groups: Vec::new(),
        variables: Vec::new(),
        presentation: Vec::new(),
        linkage: Vec::new(),
        incremental: None,
        policy: SuitePolicy {
            on_failure: OnFailure::Stop,
        },
        products,
        pulled_in: Vec::new(),
    })
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> Sha256 {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut raw = [0_u8; 32];
    raw.copy_from_slice(digest.as_ref());
    Sha256::from_bytes(&raw)
}

impl Mirror {
    /// An empty mirror and a new builder key.
    pub(crate) fn new() -> anyhow::Result<Mirror> {
        let temp = tempfile::Builder::new()
            .prefix("roleout-bench-")
            .tempdir()?;
        let base = temp.path().to_owned();
        let mirror = base.join("mirror");
        fs::create_dir_all(mirror.join("suites"))?;
        fs::create_dir_all(mirror.join("payloads"))?;
        let pkcs8 = BuilderKey::generate_pkcs8()?;
        let builder = BuilderKey::from_pkcs8(&pkcs8)?.public_key();
        let signer = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|error| anyhow::anyhow!("builder key: {error}"))?;
        fs::write(base.join("boot_id"), "bench-boot\n")?;
        Ok(Mirror {
            _temp: temp,
            base,
            mirror,
            builder,
            signer,
        })
    }

    /// Adds a payload; its digest.
    pub(crate) fn payload(&self, bytes: &[u8]) -> anyhow::Result<Sha256> {
        let digest = sha256(bytes);
        fs::write(self.mirror.join("payloads").join(digest.as_str()), bytes)?;
        Ok(digest)
    }

    /// Signs `suite` for [`MACHINE`] with `serial` and publishes it.
    pub(crate) fn publish(&self, suite: &Suite, serial: u64) -> anyhow::Result<()> {
        let plan = resolve_suite(suite, None).map_err(|errors| {
            anyhow::anyhow!("the benchmark suite does not resolve: {errors:?}")
        })?;
        let build = sha256(&serde_json::to_vec(suite)?);
        let delivery = SuiteDelivery {
            suite: suite.clone(),
            machine: MachineObject {
                name: MachineId::new(MACHINE)?,
                os: "linux".to_owned(),
                arch: std::env::consts::ARCH.to_owned(),
                components: plan.order().cloned().collect(),
            },
            plan,
            build_digest: build.clone(),
            customization: Customization::default(),
        };
        let expires = Timestamp::from_system_time(SystemTime::now() + Duration::from_secs(86_400))
            .context("an expiry time")?;
        let signed = SignedContent::new(
            &delivery,
            MachineId::new(MACHINE)?,
            "default",
            Some(build),
            serial,
            expires,
        )?;
        let signature = self.signer.sign(&signed.signed_message()?);
        let envelope = SignedEnvelope {
            signed,
            signature: signature.as_ref().to_vec().into(),
            key_id: self.builder.key_id(),
        };
        fs::write(
            self.mirror
                .join("suites")
                .join(format!("{}.json", suite.id)),
            serde_json::to_vec(&envelope)?,
        )?;
        Ok(())
    }

    /// A machine state directory `name` with the identity pinning the
    /// builder key (made once).
    pub(crate) fn state(&self, name: &str) -> anyhow::Result<PathBuf> {
        let state = self.base.join(name);
        if !state.exists() {
            Identity::save(
                &state,
                &Enrolment {
                    server: "https://roleout.invalid".to_owned(),
                    fallbacks: Vec::new(),
                    machine: MachineId::new(MACHINE)?,
                },
                &self.builder,
            )?;
        }
        Ok(state)
    }

    /// `roleout install SUITE` from the mirror with `state`.
    pub(crate) fn install(&self, roleout: &Path, state: &Path, suite: &str) -> anyhow::Result<()> {
        let root = state.join("root");
        fs::create_dir_all(&root)?;
        let output = Command::new(roleout)
            .args(["--quiet", "install", suite])
            .env("ROLEOUT_STATE_DIR", state)
            .env("ROLEOUT_MIRROR", &self.mirror)
            .env("ROLEOUT_ROOT", &root)
            .env("ROLEOUT_BOOT_ID_FILE", self.base.join("boot_id"))
            .env_remove("ROLEOUT_CACHE_DIR")
            .stdin(Stdio::null())
            .output()
            .context("running roleout")?;
        if !output.status.success() {
            bail!(
                "roleout install exited with {}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

/// The same 200 commands by one `sh`: each `true` executed as a program,
/// as roleout executes it (the shell builtin would run no process).
fn baseline(script: &Path) -> anyhow::Result<()> {
    let status = Command::new("sh").arg(script).status()?;
    if !status.success() {
        bail!("the baseline script failed");
    }
    Ok(())
}

/// The B4 row.
pub(crate) fn run(runs: usize) -> anyhow::Result<Row> {
    let roleout = sibling("roleout")?;
    let products = (0..COMPONENTS)
        .map(product)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mirror = Mirror::new()?;
    mirror.publish(&suite(SUITE, "1.0", products)?, 1)?;
    let true_path = ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .find(|path| Path::new(path).is_file())
        .context("no true program in /usr/bin or /bin")?;
    let script = mirror.base.join("baseline.sh");
    fs::write(&script, format!("{true_path}\n").repeat(COMPONENTS))?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for index in 0..runs {
        // A fresh state each run, so that every component runs.
        let state = mirror.state(&format!("state-{index}"))?;
        a.push(millis(time(|| mirror.install(&roleout, &state, SUITE))?.0));
        b.push(millis(time(|| baseline(&script))?.0));
    }
    let (a, b) = (median(&a), median(&b));
    let per_component = (a - b) / COMPONENTS as f64;
    Ok(Row {
        id: "B4".to_owned(),
        label: format!("install {COMPONENTS} components (true)"),
        a,
        b: Some(b),
        unit: "ms",
        figure: per_component,
        target: "(A-B)/200 <= 5 ms".to_owned(),
        met: per_component <= 5.0,
        notes: "figure = per-component overhead in ms; offline mirror, fresh state each run"
            .to_owned(),
    })
}
