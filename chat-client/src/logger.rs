//! `--log-dir`: a plain-text log per buffer (`server.log`, `everyone.log`, `#rust.log`,
//! `@bob.log`), appended by a thread of its own so a slow disk never holds up typing.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::Context;

/// Lines waiting for the disk; beyond this they are counted and dropped, not buffered.
const QUEUE_LEN: usize = 4096;

/// The log writer: lines go in through [`Logger::log`]; dropping it flushes and closes.
#[derive(Debug)]
pub struct Logger {
    tx: Option<SyncSender<(String, String)>>,
    thread: Option<JoinHandle<()>>,
}

impl Logger {
    /// Starts writing logs into `dir`, creating it if needed.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (tx, rx) = sync_channel(QUEUE_LEN);
        let dir = dir.to_owned();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_logs(&dir, &rx))
            .context("starting the log writer")?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Appends `line` to `buffer`'s log, unless the disk is too far behind.
    pub fn log(&self, buffer: String, line: String) {
        // A log that cannot keep up loses lines; the chat does not wait for it.
        if let Some(tx) = &self.tx {
            let _ = tx.try_send((buffer, line));
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_logs(dir: &Path, rx: &Receiver<(String, String)>) {
    let mut files: HashMap<String, Option<BufWriter<File>>> = HashMap::new();
    while let Ok((buffer, line)) = rx.recv() {
        let mut batch = vec![(buffer, line)];
        batch.extend(rx.try_iter());
        for (buffer, line) in batch {
            let file = files.entry(buffer.clone()).or_insert_with(|| {
                let path: PathBuf = dir.join(format!("{buffer}.log"));
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .ok()
                    .map(BufWriter::new)
            });
            if let Some(file) = file {
                let _ = writeln!(file, "{line}");
            }
        }
        for file in files.values_mut().flatten() {
            let _ = file.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_buffer_gets_its_own_file_in_order() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let logger = Logger::start(dir.path()).expect("a logger");
        logger.log("#rust".into(), "one".into());
        logger.log("@bob".into(), "two".into());
        logger.log("#rust".into(), "three".into());
        drop(logger);
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect("a log file");
        assert_eq!(read("#rust.log"), "one\nthree\n");
        assert_eq!(read("@bob.log"), "two\n");
    }
}
