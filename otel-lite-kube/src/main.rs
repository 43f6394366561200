//! `otel-lite-kube`: writes the kube-prometheus artefacts of a service (see `--help`).

use std::process::ExitCode;

use otel_lite_kube::cli::{self, Command};

fn main() -> ExitCode {
    match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Render { spec, out }) => match write(&spec, &out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("otel-lite-kube: {}: {e}", out.display());
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("otel-lite-kube: {e}");
            ExitCode::from(2)
        }
    }
}

fn write(spec: &otel_lite_kube::Spec, out: &std::path::Path) -> std::io::Result<()> {
    for (path, contents) in otel_lite_kube::render(spec) {
        let path = out.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, contents)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
