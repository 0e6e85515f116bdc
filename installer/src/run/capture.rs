//! Bounded capture of a child's output stream.
//!
//! An installer can print gigabytes (a verbose `tar`, a looping script), so
//! a stream is never kept whole: the first bytes (where a tool says what it
//! is doing) and the last bytes (where it says why it stopped) are kept, and
//! the rest is only counted. Memory stays at `head + tail` bytes per stream
//! whatever the child prints.

use std::io::{self, Read};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;

use serde::{Deserialize, Serialize};

use crate::run::logwatch::{StreamJudge, feed_stream};

use crate::run::redact::Secrets;

/// How much of each output stream (stdout, stderr) is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureLimit {
    /// Bytes kept from the start of the stream.
    pub head: usize,
    /// Bytes kept from the end of the stream.
    pub tail: usize,
}

impl Default for CaptureLimit {
    /// 64 KiB of head and 64 KiB of tail.
    fn default() -> Self {
        Self {
            head: 64 * 1024,
            tail: 64 * 1024,
        }
    }
}

/// What was kept of one output stream, secrets already masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedOutput {
    /// The kept bytes as text (invalid UTF-8 replaced). When bytes were
    /// left out, head and tail are joined by a line
    /// `… N bytes omitted …`.
    pub text: String,
    /// How many bytes the stream carried in all.
    pub total_bytes: u64,
    /// How many of them are not in `text`.
    pub omitted_bytes: u64,
}

impl CapturedOutput {
    /// Whether the stream carried nothing.
    pub fn is_empty(&self) -> bool {
        self.total_bytes == 0
    }
}

/// The kept bytes of one stream while it is being read.
#[derive(Debug)]
pub(crate) struct BoundedBuffer {
    limit: CaptureLimit,
    head: Vec<u8>,
    /// A ring of the last `limit.tail` bytes; once full, the oldest byte is
    /// at `tail_start`.
    tail: Vec<u8>,
    tail_start: usize,
    total: u64,
}

impl BoundedBuffer {
    pub(crate) fn new(limit: CaptureLimit) -> Self {
        Self {
            limit,
            head: Vec::new(),
            tail: Vec::new(),
            tail_start: 0,
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let head_room = self.limit.head - self.head.len();
        let into_head = head_room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..into_head]);
        bytes = &bytes[into_head..];

        let capacity = self.limit.tail;
        if bytes.is_empty() || capacity == 0 {
            return;
        }
        if bytes.len() >= capacity {
            // The new bytes alone fill the ring: keep their end, in order.
            self.tail.clear();
            self.tail
                .extend_from_slice(&bytes[bytes.len() - capacity..]);
            self.tail_start = 0;
            return;
        }
        if self.tail.len() < capacity {
            let into_tail = (capacity - self.tail.len()).min(bytes.len());
            self.tail.extend_from_slice(&bytes[..into_tail]);
            bytes = &bytes[into_tail..];
        }
        // The ring is full: overwrite the oldest bytes.
        while !bytes.is_empty() {
            let chunk = (capacity - self.tail_start).min(bytes.len());
            self.tail[self.tail_start..self.tail_start + chunk].copy_from_slice(&bytes[..chunk]);
            self.tail_start = (self.tail_start + chunk) % capacity;
            bytes = &bytes[chunk..];
        }
    }

    /// The kept bytes with secrets masked.
    pub(crate) fn snapshot(&self, secrets: &Secrets) -> CapturedOutput {
        let mut tail = Vec::with_capacity(self.tail.len());
        tail.extend_from_slice(&self.tail[self.tail_start..]);
        tail.extend_from_slice(&self.tail[..self.tail_start]);
        let kept = (self.head.len() + tail.len()) as u64;
        let omitted = self.total - kept;
        let text = if omitted == 0 {
            let mut whole = self.head.clone();
            whole.extend_from_slice(&tail);
            String::from_utf8_lossy(&secrets.redact_bytes(&whole)).into_owned()
        } else {
            // Each side of the gap is a piece of a longer text: a secret
            // the gap cut in two must not show its halves.
            let head = secrets.redact_piece(&self.head, false, true);
            let tail = secrets.redact_piece(&tail, true, false);
            format!(
                "{}\n… {omitted} bytes omitted …\n{}",
                String::from_utf8_lossy(&head),
                String::from_utf8_lossy(&tail)
            )
        };
        CapturedOutput {
            text,
            total_bytes: self.total,
            omitted_bytes: omitted,
        }
    }
}

/// A stream being read into a shared [`BoundedBuffer`] by its own thread.
pub(crate) type SharedBuffer = Arc<Mutex<BoundedBuffer>>;

/// Reads `stream` to its end into a new buffer on a thread of its own. The
/// thread drops `done` when the stream ends, so whoever holds the receiver
/// learns when every reader is finished. No stream gives an empty buffer.
pub(crate) fn read_in_background(
    stream: Option<impl Read + Send + 'static>,
    limit: CaptureLimit,
    judge: Option<StreamJudge>,
    done: mpsc::Sender<()>,
) -> io::Result<SharedBuffer> {
    let buffer = Arc::new(Mutex::new(BoundedBuffer::new(limit)));
    let Some(mut stream) = stream else {
        return Ok(buffer);
    };
    let shared = Arc::clone(&buffer);
    thread::Builder::new()
        .name("roleout-output".to_owned())
        .spawn(move || {
            let _done = done;
            let mut chunk = vec![0; 64 * 1024];
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(count) => {
                        if let Some(judge) = &judge {
                            feed_stream(judge, &chunk[..count]);
                        }
                        shared
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(&chunk[..count]);
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    // A read error on a pipe means the pipe is gone; what was
                    // read so far is all there is.
                    Err(_) => break,
                }
            }
        })?;
    Ok(buffer)
}

#[cfg(test)]
// Test inputs are literals; a panic on one is the test failing.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn buffer(head: usize, tail: usize) -> BoundedBuffer {
        BoundedBuffer::new(CaptureLimit { head, tail })
    }

    #[test]
    fn keeps_everything_that_fits() {
        let mut kept = buffer(4, 4);
        kept.push(b"abc");
        kept.push(b"defgh");
        let output = kept.snapshot(&Secrets::default());
        assert_eq!(output.text, "abcdefgh");
        assert_eq!((output.total_bytes, output.omitted_bytes), (8, 0));
    }

    #[test]
    fn keeps_head_and_tail_across_many_small_pushes() {
        let mut kept = buffer(3, 5);
        let all: Vec<u8> = (0..200u8).map(|n| b'a' + n % 26).collect();
        for byte in &all {
            kept.push(std::slice::from_ref(byte));
        }
        let output = kept.snapshot(&Secrets::default());
        let expected_tail = String::from_utf8_lossy(&all[195..]).into_owned();
        assert_eq!(
            output.text,
            format!("abc\n… 192 bytes omitted …\n{expected_tail}")
        );
        assert_eq!(output.omitted_bytes, 192);
    }

    #[test]
    fn keeps_the_end_of_a_push_larger_than_the_tail() {
        let mut kept = buffer(2, 3);
        kept.push(b"0123456789");
        kept.push(b"ab");
        let output = kept.snapshot(&Secrets::default());
        assert_eq!(output.text, "01\n… 7 bytes omitted …\n9ab");
    }

    #[test]
    fn masks_a_secret_cut_by_the_gap() {
        let mut kept = buffer(7, 8);
        kept.push(b"pw=hunt");
        kept.push(&[b'.'; 100]);
        kept.push(b"er2 done");
        let output = kept.snapshot(&Secrets::new(["hunter2"]));
        assert!(!output.text.contains("hunt"), "{}", output.text);
        assert!(output.text.starts_with("pw=********\n"), "{}", output.text);
        assert!(output.text.ends_with("\n******** done"), "{}", output.text);
    }
}
