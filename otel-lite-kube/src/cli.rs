//! The `otel-lite-kube` command line, parsed by hand: options to a [`Spec`], with errors
//! that name the bad input.

use std::collections::BTreeMap;
use std::path::PathBuf;

use otel_lite_core::metrics::{ObjectiveLatency, ObjectivePercentile};

use crate::spec::{RouteObjective, Spec, SpecError};

/// The usage text of `--help`.
pub const USAGE: &str = "\
otel-lite-kube: kube-prometheus artefacts for a service instrumented with otel-lite

USAGE:
    otel-lite-kube --quickstart --out DIR
    otel-lite-kube --service NAME --namespace NS --selector k=v[,k=v] --release NAME [OPTIONS] --out DIR

OPTIONS:
    --service NAME          the service (object names, the scrape job)
    --namespace NS          its namespace
    --port-name NAME        the port serving metrics [default: metrics]
    --metrics-path PATH     [default: /metrics]
    --selector k=v[,k=v]    the labels of its pods and Service
    --release NAME          the kube-prometheus-stack Helm release
    --monitoring-namespace NS
                            the namespace of that release (prometheus-adapter's
                            Prometheus URL) [default: monitoring]
    --scrape-interval DUR   [default: 30s]
    --http-objective NAME:ROUTE:success=PCT
    --http-objective NAME:ROUTE:latency=SECONDS@PCT
                            an objective for an HTTP route (repeat; a name given twice
                            combines both); PCT is 90, 95, 99 or 99.9, SECONDS a bucket
                            boundary (0.005 ... 10.0)
    --time-scale N          divide every rule window by N (tests; default 1)
    --quickstart            start from the quickstart's spec (deploy/)
    --out DIR               where to write the files
    -h, --help              this text
";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Print [`USAGE`].
    Help,
    /// Render `spec` into `out`.
    Render {
        /// The service (boxed: a spec is large, help is nothing).
        spec: Box<Spec>,
        /// The output directory.
        out: PathBuf,
    },
}

/// A command line the tool cannot run.
#[derive(Debug, PartialEq)]
pub enum CliError {
    /// An option it does not know.
    UnknownOption(String),
    /// An option without its value.
    MissingValue(String),
    /// A required option not given (without `--quickstart`).
    Missing(&'static str),
    /// A `--selector` item that is not `key=value`.
    BadSelector(String),
    /// A `--time-scale` that is not a positive integer.
    BadTimeScale(String),
    /// A `--http-objective` that is not `NAME:ROUTE:success=PCT` or
    /// `NAME:ROUTE:latency=SECONDS@PCT`.
    BadObjective(String),
    /// A percentile other than 90, 95, 99 and 99.9.
    UnknownPercentile(String),
    /// A latency that is not a histogram bucket boundary.
    LatencyNotABucket(String),
    /// The spec the options describe is invalid.
    Spec(SpecError),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::UnknownOption(o) => write!(f, "unknown option {o:?} (see --help)"),
            CliError::MissingValue(o) => write!(f, "{o} needs a value"),
            CliError::Missing(o) => write!(f, "{o} is required (or start from --quickstart)"),
            CliError::BadSelector(s) => write!(f, "selector item {s:?} is not key=value"),
            CliError::BadTimeScale(s) => write!(f, "time scale {s:?} is not an integer from 1 to 3600"),
            CliError::BadObjective(s) => {
                write!(f, "objective {s:?} is not NAME:ROUTE:success=PCT or NAME:ROUTE:latency=SECONDS@PCT")
            }
            CliError::UnknownPercentile(s) => write!(f, "percentile {s:?} is not one of 90, 95, 99, 99.9"),
            CliError::LatencyNotABucket(s) => write!(
                f,
                "latency {s:?} is not a bucket boundary (0.005 0.01 0.025 0.05 0.075 0.1 0.25 0.5 0.75 1 2.5 5 7.5 10)"
            ),
            CliError::Spec(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CliError {}

/// Parses the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    let mut args = args.into_iter();
    let mut quickstart = false;
    let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut objectives = Vec::new();
    const VALUED: [&str; 11] = [
        "--service",
        "--namespace",
        "--port-name",
        "--metrics-path",
        "--selector",
        "--release",
        "--monitoring-namespace",
        "--scrape-interval",
        "--time-scale",
        "--out",
        "--http-objective",
    ];
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--quickstart" => quickstart = true,
            option => {
                let Some(key) = VALUED.iter().find(|k| **k == option) else {
                    return Err(CliError::UnknownOption(arg));
                };
                let value = args.next().ok_or_else(|| CliError::MissingValue(arg.clone()))?;
                if *key == "--http-objective" {
                    objectives.push(value);
                } else {
                    values.insert(key, value);
                }
            }
        }
    }
    let mut spec = if quickstart {
        Spec::quickstart()
    } else {
        let required = |key: &'static str| values.get(key).cloned().ok_or(CliError::Missing(key));
        Spec {
            service: required("--service")?,
            namespace: required("--namespace")?,
            port_name: "metrics".into(),
            metrics_path: "/metrics".into(),
            selector: BTreeMap::new(),
            release: required("--release")?,
            monitoring_namespace: "monitoring".into(),
            scrape_interval: "30s".into(),
            http_objectives: Vec::new(),
            time_scale: 1,
        }
    };
    if !quickstart && !values.contains_key("--selector") {
        return Err(CliError::Missing("--selector"));
    }
    for (key, value) in &values {
        match *key {
            "--service" => spec.service = value.clone(),
            "--namespace" => spec.namespace = value.clone(),
            "--port-name" => spec.port_name = value.clone(),
            "--metrics-path" => spec.metrics_path = value.clone(),
            "--release" => spec.release = value.clone(),
            "--monitoring-namespace" => spec.monitoring_namespace = value.clone(),
            "--scrape-interval" => spec.scrape_interval = value.clone(),
            "--selector" => spec.selector = parse_selector(value)?,
            "--time-scale" => {
                spec.time_scale = match value.parse::<u32>() {
                    Ok(n) if (1..=3600).contains(&n) => n,
                    _ => return Err(CliError::BadTimeScale(value.clone())),
                }
            }
            _ => {}
        }
    }
    if !objectives.is_empty() {
        spec.http_objectives.clear();
    }
    for text in &objectives {
        add_objective(&mut spec.http_objectives, text)?;
    }
    let out = values.get("--out").map(PathBuf::from).ok_or(CliError::Missing("--out"))?;
    spec.validate().map_err(CliError::Spec)?;
    Ok(Command::Render { spec: Box::new(spec), out })
}

fn parse_selector(text: &str) -> Result<BTreeMap<String, String>, CliError> {
    text.split(',')
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CliError::BadSelector(item.to_string())),
        })
        .collect()
}

/// A percentile from its label (`99.9`).
pub fn parse_percentile(text: &str) -> Result<ObjectivePercentile, CliError> {
    ObjectivePercentile::ALL
        .into_iter()
        .find(|p| p.label() == text)
        .ok_or_else(|| CliError::UnknownPercentile(text.to_string()))
}

/// A latency threshold from seconds (`0.25`, `1`, `1.0`): compared as numbers, so any
/// spelling of a boundary is accepted.
pub fn parse_latency(text: &str) -> Result<ObjectiveLatency, CliError> {
    let seconds: f64 = text.parse().map_err(|_| CliError::LatencyNotABucket(text.to_string()))?;
    ObjectiveLatency::ALL
        .into_iter()
        .find(|t| t.seconds() == seconds)
        .ok_or_else(|| CliError::LatencyNotABucket(text.to_string()))
}

fn add_objective(objectives: &mut Vec<RouteObjective>, text: &str) -> Result<(), CliError> {
    let bad = || CliError::BadObjective(text.to_string());
    // NAME:ROUTE:KIND=VALUE; the route may contain ':' (`/items/:id`), so split at the ends.
    let (name, rest) = text.split_once(':').ok_or_else(bad)?;
    let (route, kind_value) = rest.rsplit_once(':').ok_or_else(bad)?;
    let (kind, value) = kind_value.split_once('=').ok_or_else(bad)?;
    if name.is_empty() || route.is_empty() {
        return Err(bad());
    }
    let index = match objectives.iter().position(|o| o.name == name) {
        Some(i) if objectives[i].route == route => i,
        Some(_) => return Err(CliError::Spec(SpecError::DuplicateObjective(name.to_string()))),
        None => {
            objectives.push(RouteObjective {
                name: name.to_string(),
                route: route.to_string(),
                success_rate: None,
                latency: None,
            });
            objectives.len() - 1
        }
    };
    let objective = &mut objectives[index];
    match kind {
        "success" => objective.success_rate = Some(parse_percentile(value)?),
        "latency" => {
            let (seconds, percentile) = value.split_once('@').ok_or_else(bad)?;
            objective.latency = Some((parse_latency(seconds)?, parse_percentile(percentile)?));
        }
        _ => return Err(bad()),
    }
    Ok(())
}
