//! The naive driver: what the two crashes of ARCHITECTURE.md §1 were made of, on purpose.
//!
//! - Connect: pend ALE_AUTH_CONNECT, queue the connection for user mode, and complete the stored
//!   `completionContext` whenever the verdict comes — with no teardown handling at all (it
//!   registers nothing useful at ALE_ENDPOINT_CLOSURE). A teardown while the verdict is pending
//!   leaves a stale context: completing it is the PAGE_FAULT_IN_NONPAGED_AREA of the pend/teardown
//!   race.
//! - Stream: keep the previous indication's `streamData` to look for a pattern spanning two
//!   segments, and read it on the next indication — after NETIO has dropped it: the 0xD1 in
//!   `NETIO!StreamInvokeCalloutAndNormalizeAction`.
//!
//! It is the counterexample the model must crash on; never a pattern to copy.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::callout::{
    Action, CalloutDriver, ClassifyCall, ClassifyOut, CompletionContext, ConnectionValues, Layer, StreamAction,
    StreamDataRef,
};
use crate::engine::Engine;

/// A connection the naive driver is holding for user mode.
#[derive(Clone, Debug)]
pub struct NaivePended {
    /// The id user mode answers.
    pub id: u64,
    /// What was classified.
    pub values: ConnectionValues,
}

#[derive(Default)]
struct NaiveState {
    next_id: u64,
    pended: HashMap<u64, (CompletionContext, ConnectionValues)>,
    queue: VecDeque<u64>,
    /// Verdicts for the reauthorization, by (endpoint-less) remote + process: the naive key.
    decided: HashMap<(std::net::SocketAddr, u64), bool>,
    /// The previous stream indication's data, kept "for later". The bug.
    kept_stream_data: HashMap<u64, StreamDataRef>,
}

/// The naive driver.
pub struct NaiveDriver {
    state: Mutex<NaiveState>,
    stream_callout: Mutex<Option<u32>>,
}

impl NaiveDriver {
    /// Registers callouts at ALE_AUTH_CONNECT, ALE_FLOW_ESTABLISHED and STREAM, with filters.
    #[must_use]
    pub fn load(engine: &Arc<Engine>) -> Arc<NaiveDriver> {
        Self::load_with(engine, true, true)
    }

    /// Registers the connect callout (pends ALE_AUTH_CONNECT) and/or the stream callouts.
    #[must_use]
    pub fn load_with(engine: &Arc<Engine>, connect: bool, stream: bool) -> Arc<NaiveDriver> {
        let driver =
            Arc::new(NaiveDriver { state: Mutex::new(NaiveState::default()), stream_callout: Mutex::new(None) });
        let mut layers = Vec::new();
        if connect {
            layers.push(Layer::AuthConnect);
        }
        if stream {
            layers.extend([Layer::FlowEstablished, Layer::Stream]);
        }
        for layer in layers {
            if let Ok(id) = engine.register_callout(layer, driver.clone(), layer == Layer::Stream) {
                engine.add_filter(layer, id);
                if layer == Layer::Stream {
                    *driver.stream_callout.lock().unwrap_or_else(PoisonError::into_inner) = Some(id);
                }
            }
        }
        driver
    }

    fn lock(&self) -> MutexGuard<'_, NaiveState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// User mode reads up to `max` pended connections.
    pub fn take_pended(&self, max: usize) -> Vec<NaivePended> {
        let mut state = self.lock();
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some(id) = state.queue.pop_front() else {
                break;
            };
            if let Some((_, values)) = state.pended.get(&id) {
                batch.push(NaivePended { id, values: values.clone() });
            }
        }
        batch
    }

    /// User mode answers: store the verdict for the reauthorization and complete the stored
    /// context. No check that the endpoint still exists — there is no API for one.
    pub fn answer(&self, engine: &Engine, id: u64, permit: bool) -> bool {
        let entry = {
            let mut state = self.lock();
            let entry = state.pended.remove(&id);
            if let Some((_, values)) = &entry {
                state.decided.insert((values.remote, values.process_id), permit);
            }
            entry
        };
        match entry {
            Some((context, _)) => {
                engine.fwps_complete_operation0(context);
                true
            }
            None => false,
        }
    }
}

impl CalloutDriver for NaiveDriver {
    fn classify(&self, engine: &Engine, call: &ClassifyCall, out: &mut ClassifyOut) {
        match call.layer {
            Layer::AuthConnect => {
                if call.is_reauthorize {
                    let permit = self
                        .lock()
                        .decided
                        .get(&(call.values.remote, call.values.process_id))
                        .copied()
                        .unwrap_or(false);
                    out.action = Some(if permit { Action::Permit } else { Action::Block });
                    return;
                }
                let Some(handle) = call.metadata.completion_handle else {
                    out.action = Some(Action::Permit);
                    return;
                };
                match engine.fwps_pend_operation0(handle) {
                    Ok(context) => {
                        let mut state = self.lock();
                        state.next_id = state.next_id.wrapping_add(1);
                        let id = state.next_id;
                        state.pended.insert(id, (context, call.values.clone()));
                        state.queue.push_back(id);
                        out.action = Some(Action::Block);
                        out.absorb = true;
                        out.write_right = false;
                    }
                    Err(_) => out.action = Some(Action::Permit),
                }
            }
            Layer::FlowEstablished => {
                out.action = Some(Action::Continue);
                let callout = *self.stream_callout.lock().unwrap_or_else(PoisonError::into_inner);
                if let (Some(flow), Some(callout)) = (call.metadata.flow_handle, callout) {
                    let _ = engine.fwps_flow_associate_context0(flow, Layer::Stream, callout, flow);
                }
            }
            Layer::Stream => {
                let flow = call.flow_context;
                let previous = self.lock().kept_stream_data.remove(&flow);
                let mut window = [0_u8; 64];
                if let Some(previous) = previous {
                    // "Look at the tail of the previous segment too": NETIO freed it already.
                    let _ = engine.fwps_copy_stream_data_to_buffer0(previous, &mut window);
                }
                if let Some(data) = call.stream.and_then(|packet| packet.stream_data) {
                    let _ = engine.fwps_copy_stream_data_to_buffer0(data, &mut window);
                    self.lock().kept_stream_data.insert(flow, data);
                }
                out.action = Some(Action::Permit);
                out.stream_action = Some(StreamAction::None);
            }
            _ => out.action = Some(Action::Continue),
        }
    }

    fn flow_delete(&self, _engine: &Engine, _layer: Layer, _callout_id: u32, flow_context: u64) {
        self.lock().kept_stream_data.remove(&flow_context);
    }
}
