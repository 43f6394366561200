//! `build_info`: which build of the service is running, as a series with value 1, next to
//! `target_info`. Dashboards show it; alerts and queries join on it (a version that
//! errors more than the previous one).

use std::borrow::Cow;

use crate::attributes::KeyValue;
use crate::error::RegistrationError;
use crate::metrics::registry::Registry;

/// The gauge's name (Prometheus: `build_info`).
pub const BUILD_INFO: &str = "build_info";

/// What `build_info` says about the running build. [`build_info!`](crate::build_info)
/// fills it from the application's Cargo version and, at compile time, the `GIT_COMMIT`
/// and `GIT_BRANCH` variables (a build script or CI sets them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    version: Cow<'static, str>,
    commit: Cow<'static, str>,
    branch: Cow<'static, str>,
}

impl BuildInfo {
    /// A build of `version`, commit and branch unknown (empty labels).
    pub fn new(version: impl Into<Cow<'static, str>>) -> BuildInfo {
        BuildInfo { version: version.into(), commit: Cow::Borrowed(""), branch: Cow::Borrowed("") }
    }

    /// The commit it was built from.
    pub fn commit(mut self, commit: impl Into<Cow<'static, str>>) -> BuildInfo {
        self.commit = commit.into();
        self
    }

    /// The branch it was built from.
    pub fn branch(mut self, branch: impl Into<Cow<'static, str>>) -> BuildInfo {
        self.branch = branch.into();
        self
    }

    /// The version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Registers `build_info{version, commit, branch, language="rust", service_name} 1` in
    /// `registry`, the service name taken from its resource.
    pub fn register(&self, registry: &Registry) -> Result<(), RegistrationError> {
        let gauge = registry
            .gauge::<i64>(BUILD_INFO)
            .description("The running build: version, commit and branch; always 1.")
            .build()?;
        gauge.set(
            1,
            &[
                KeyValue::new("version", self.version.to_string()),
                KeyValue::new("commit", self.commit.to_string()),
                KeyValue::new("branch", self.branch.to_string()),
                KeyValue::new("language", "rust"),
                KeyValue::new("service_name", registry.resource().service_name()),
            ],
        );
        Ok(())
    }
}

/// The calling crate's [`BuildInfo`](crate::metrics::BuildInfo): its `CARGO_PKG_VERSION`,
/// and the `GIT_COMMIT` / `GIT_BRANCH` environment variables as they were at compile time
/// (empty when unset).
///
/// ```
/// let info = otel_lite_core::build_info!();
/// assert_eq!(info.version(), env!("CARGO_PKG_VERSION"));
/// ```
#[macro_export]
macro_rules! build_info {
    () => {
        $crate::metrics::BuildInfo::new(::core::env!("CARGO_PKG_VERSION"))
            .commit(match ::core::option_env!("GIT_COMMIT") {
                ::core::option::Option::Some(c) => c,
                ::core::option::Option::None => "",
            })
            .branch(match ::core::option_env!("GIT_BRANCH") {
                ::core::option::Option::Some(b) => b,
                ::core::option::Option::None => "",
            })
    };
}
