//! What the generator needs to know about one service: where its metrics are, how
//! kube-prometheus finds it, and the objectives the code cannot carry (per HTTP route).

use std::collections::BTreeMap;

use otel_lite_core::metrics::{ObjectiveLatency, ObjectivePercentile};

/// One service to generate artefacts for.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The service's name: object names, the `job` the monitors give its series, and the
    /// dashboards' titles.
    pub service: String,
    /// The Kubernetes namespace it runs in.
    pub namespace: String,
    /// The name of the container/Service port serving `/metrics`.
    pub port_name: String,
    /// The path of the metrics endpoint (`/metrics`).
    pub metrics_path: String,
    /// The labels of the service's pods (and of its Service): the monitors select on them.
    pub selector: BTreeMap<String, String>,
    /// The kube-prometheus-stack Helm release: its Prometheus selects monitors and rules
    /// labelled `release: <release>`.
    pub release: String,
    /// The namespace kube-prometheus-stack (its Prometheus) is installed in: the
    /// prometheus-adapter values point at `http://<fullname>-prometheus.<this>.svc:9090`
    /// ([`crate::adapter::prometheus_url`]). Default `monitoring`.
    pub monitoring_namespace: String,
    /// How often Prometheus scrapes the endpoint (`30s`).
    pub scrape_interval: String,
    /// Objectives of HTTP routes (functions carry theirs in their labels).
    pub http_objectives: Vec<RouteObjective>,
    /// Divides every window the rules and adapter queries use (range selectors and `for`
    /// durations): 1 in production; a test uses 60 to see an hour in a minute. The result
    /// is written as a valid Prometheus duration rounded to the millisecond (scale 60:
    /// `5m` -> `5s`, `1h` -> `1m`, `3d` -> `1h12m`). Recording rule names keep the unscaled
    /// window (`...:ratio_rate5m`), so rules and dashboards read the same at any scale.
    /// 0 counts as 1; [`Spec::validate`] refuses values above 3600 (a `5m` window would be
    /// shorter than 100 ms). Prometheus's own durations (scrape interval, the 5-minute
    /// lookback of instant selectors, the evaluation interval) are not scaled: a scaled
    /// deployment needs a scrape and evaluation interval well below its shortest window.
    /// [`render`](crate::render) expects a spec [`Spec::validate`] accepts.
    pub time_scale: u32,
}

/// An objective for one HTTP route of the server layer's `http.server.request.duration`
/// histogram. A request fails when the server layer gave it an `error_type`: a 5xx answer
/// or an error of the service (which has no status code).
#[derive(Clone, Debug, PartialEq)]
pub struct RouteObjective {
    /// The objective's name (`objective_name` of the recording rules and alerts).
    pub name: String,
    /// The route template (`http_route` label), e.g. `/checkout`.
    pub route: String,
    /// The promised share of requests that do not fail (no 5xx, no error of the service).
    pub success_rate: Option<ObjectivePercentile>,
    /// The promised share of requests faster than the threshold.
    pub latency: Option<(ObjectiveLatency, ObjectivePercentile)>,
}

/// A [`Spec`] the generator cannot honour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// A name that must be non-empty is empty (the field's name).
    Empty(&'static str),
    /// `time_scale` above 3600.
    TimeScale(u32),
    /// Two route objectives share a name.
    DuplicateObjective(String),
    /// A route objective promises nothing.
    EmptyObjective(String),
    /// A value would break the PromQL or YAML it is written into (the field and the value).
    Unquotable(&'static str, String),
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpecError::Empty(field) => write!(f, "{field} must not be empty"),
            SpecError::TimeScale(n) => write!(f, "time scale {n} is above 3600"),
            SpecError::DuplicateObjective(name) => write!(f, "two route objectives are named {name:?}"),
            SpecError::EmptyObjective(name) => {
                write!(f, "route objective {name:?} has neither a success rate nor a latency")
            }
            SpecError::Unquotable(field, value) => {
                write!(f, "{field} {value:?} contains a quote, backslash or control character")
            }
        }
    }
}

impl std::error::Error for SpecError {}

impl Spec {
    /// Checks what [`render`](crate::render) relies on: non-empty names, a time scale of
    /// at most 3600, unique non-empty route objectives, and no value that would need
    /// escaping inside a PromQL string.
    pub fn validate(&self) -> Result<(), SpecError> {
        let fields = [
            ("service", &self.service),
            ("namespace", &self.namespace),
            ("port name", &self.port_name),
            ("metrics path", &self.metrics_path),
            ("release", &self.release),
            ("monitoring namespace", &self.monitoring_namespace),
            ("scrape interval", &self.scrape_interval),
        ];
        for (field, value) in fields {
            if value.is_empty() {
                return Err(SpecError::Empty(field));
            }
            check_quotable(field, value)?;
        }
        if self.selector.is_empty() {
            return Err(SpecError::Empty("selector"));
        }
        if self.time_scale > 3600 {
            return Err(SpecError::TimeScale(self.time_scale));
        }
        let mut names = std::collections::BTreeSet::new();
        for objective in &self.http_objectives {
            check_quotable("objective name", &objective.name)?;
            check_quotable("route", &objective.route)?;
            if objective.name.is_empty() {
                return Err(SpecError::Empty("objective name"));
            }
            if objective.success_rate.is_none() && objective.latency.is_none() {
                return Err(SpecError::EmptyObjective(objective.name.clone()));
            }
            if !names.insert(objective.name.as_str()) {
                return Err(SpecError::DuplicateObjective(objective.name.clone()));
            }
        }
        Ok(())
    }

    /// `seconds` divided by [`Spec::time_scale`], as a Prometheus duration (`1h12m`,
    /// `83ms`); never below 1 ms.
    pub fn window(&self, seconds: u64) -> String {
        let scale = u64::from(self.time_scale.max(1));
        let millis = ((seconds * 1000 + scale / 2) / scale).max(1);
        prometheus_duration(millis)
    }

    /// The matchers every generated query starts with: the service's `job` (the monitors
    /// set it to [`Spec::service`]) and `namespace`, so two services' rules never
    /// compute the same series.
    pub fn matchers(&self) -> String {
        format!("job=\"{}\", namespace=\"{}\"", self.service, self.namespace)
    }

    /// The quickstart (`examples/quickstart`) as deployed by `deploy/`: namespace `demo`,
    /// the kube-prometheus-stack release `my-observability` (chart 55.5.0 as the seed
    /// notes install it) in namespace `monitoring`, a `/checkout` objective.
    pub fn quickstart() -> Spec {
        Spec {
            service: "quickstart".into(),
            namespace: "demo".into(),
            port_name: "metrics".into(),
            metrics_path: "/metrics".into(),
            selector: BTreeMap::from([("app.kubernetes.io/name".to_string(), "quickstart".to_string())]),
            release: "my-observability".into(),
            monitoring_namespace: "monitoring".into(),
            scrape_interval: "30s".into(),
            http_objectives: vec![RouteObjective {
                name: "checkout-http".into(),
                route: "/checkout".into(),
                success_rate: Some(ObjectivePercentile::P99),
                latency: Some((ObjectiveLatency::Ms500, ObjectivePercentile::P99)),
            }],
            time_scale: 1,
        }
    }
}

fn check_quotable(field: &'static str, value: &str) -> Result<(), SpecError> {
    if value.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(SpecError::Unquotable(field, value.to_string()));
    }
    Ok(())
}

/// Milliseconds as a Prometheus duration: units from days down to milliseconds, each at
/// most once (`1h12m`, `5s`, `3d`).
pub fn prometheus_duration(millis: u64) -> String {
    if millis == 0 {
        return "0s".into();
    }
    const UNITS: [(&str, u64); 5] = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)];
    let mut rest = millis;
    let mut out = String::new();
    for (unit, size) in UNITS {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_scale_to_valid_durations() {
        let mut spec = Spec::quickstart();
        assert_eq!(spec.window(300), "5m");
        assert_eq!(spec.window(3 * 86_400), "3d");
        spec.time_scale = 60;
        assert_eq!(spec.window(300), "5s");
        assert_eq!(spec.window(3600), "1m");
        assert_eq!(spec.window(3 * 86_400), "1h12m");
        spec.time_scale = 3600;
        assert_eq!(spec.window(300), "83ms");
        assert_eq!(spec.window(86_400 + 1), "24s");
        spec.time_scale = 0;
        assert_eq!(spec.window(90), "1m30s");
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(Spec::quickstart().validate(), Ok(()));
        let mut spec = Spec::quickstart();
        spec.time_scale = 3601;
        assert_eq!(spec.validate(), Err(SpecError::TimeScale(3601)));
        let mut spec = Spec::quickstart();
        spec.http_objectives.push(spec.http_objectives[0].clone());
        assert_eq!(spec.validate(), Err(SpecError::DuplicateObjective("checkout-http".into())));
        let mut spec = Spec::quickstart();
        spec.http_objectives[0].route = "/a\"b".into();
        assert!(matches!(spec.validate(), Err(SpecError::Unquotable("route", _))));
    }
}
