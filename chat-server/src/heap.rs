//! A counting allocator, built only with `--features heap-stats`: mimalloc behind `cap`'s
//! counters, so `/metrics` can tell the heap the server holds (`chat_heap_live_bytes`, and
//! its high-water mark) from the RSS the allocator keeps around it. For measuring
//! (docs/performance.md); every allocation then pays two atomic operations.

use cap::Cap;
use mimalloc::MiMalloc;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

#[global_allocator]
static ALLOCATOR: Cap<MiMalloc> = Cap::new(MiMalloc, usize::MAX);

/// Reads the allocator's counters at each scrape.
#[derive(Debug)]
pub struct Heap;

impl Collector for Heap {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauges = [
            (
                "heap_live",
                "Bytes allocated and not yet freed, as requested (not rounded up to size classes)",
                ALLOCATOR.allocated(),
            ),
            (
                "heap_peak",
                "The highest heap_live since the start",
                ALLOCATOR.max_allocated(),
            ),
        ];
        for (name, help, bytes) in gauges {
            let gauge = ConstGauge::new(i64::try_from(bytes).unwrap_or(i64::MAX));
            let metric =
                encoder.encode_descriptor(name, help, Some(&Unit::Bytes), gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}
