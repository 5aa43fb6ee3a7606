//! The download progress bar (indicatif draws nothing when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

pub fn progress_bar(total: Option<u64>, name: &str) -> ProgressBar {
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    };
    bar.set_message(name.to_string());
    bar
}
