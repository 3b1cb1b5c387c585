//! The root context: configuration, shared-state membership, tick and notifications.

use crate::abi::{self, Level};
use crate::mesh::{self, ProxyShared};
use crate::metrics::{self, GlobalIds, RouteIds};
use c4mesh_filter_core::{Config, Mode, Worker};
use std::cell::RefCell;
use std::rc::Rc;

/// Metrics flush and housekeeping period: metrics lag traffic by at most this.
const TICK_MS: u32 = 500;

/// What the streams of one configuration share.
pub struct Active {
    pub worker: RefCell<Worker>,
    pub shared: ProxyShared,
    pub routes: RouteIds,
    pub global: Rc<GlobalIds>,
    queue: Option<u32>,
}

#[derive(Default)]
pub struct Root {
    global: Rc<GlobalIds>,
    active: Option<Rc<Active>>,
}

impl Root {
    /// The configuration new streams take; `None` before one was accepted.
    pub fn active(&self) -> Option<Rc<Active>> {
        self.active.clone()
    }

    pub fn on_vm_start(&mut self) {
        self.global = Rc::new(GlobalIds::define());
    }

    pub fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = abi::plugin_configuration(plugin_configuration_size);
        let config = match Config::parse(&bytes) {
            Ok(config) => config,
            Err(err) => {
                abi::log(Level::Error, &format!("invalid configuration: {err}"));
                self.global.config_error();
                return false;
            }
        };
        abi::log(Level::Info, &configured_line(&config));
        let namespace = fingerprint(&bytes);
        let vm_id = abi::property(&["plugin_vm_id"])
            .map(|id| String::from_utf8_lossy(&id).into_owned())
            .unwrap_or_default();
        let (mut shared, queue) = ProxyShared::join(vm_id, namespace);
        let routes = RouteIds::define(&config);
        let mut worker = Worker::new(config, namespace);
        worker.init_shared(&mut shared);
        self.active = Some(Rc::new(Active {
            worker: RefCell::new(worker),
            shared,
            routes,
            global: Rc::clone(&self.global),
            queue,
        }));
        abi::set_tick_period_ms(TICK_MS);
        true
    }

    pub fn on_tick(&mut self) {
        let Some(active) = &self.active else {
            return;
        };
        let mut worker = active.worker.borrow_mut();
        let mut shared = active.shared.clone();
        worker.on_tick(abi::now_ms(), &mut shared);
        worker.drain_metrics(|update| metrics::apply(&active.global, &active.routes, update));
        let (keys, bytes) = active.shared.footprint();
        active.global.report_footprint(keys, bytes);
    }

    pub fn on_queue_ready(&mut self, queue_id: u32) {
        let Some(active) = &self.active else {
            return;
        };
        let mut shared = active.shared.clone();
        // Drain whatever is queued, even for a queue of an older configuration.
        while let Some(message) = abi::dequeue(queue_id) {
            if Some(queue_id) == active.queue {
                if let Some(route) = mesh::route_of_message(&message) {
                    active.worker.borrow_mut().refresh(route, &mut shared);
                }
            }
        }
    }
}

/// The one line that says what a VM now runs with.
fn configured_line(config: &Config) -> String {
    match config.mode {
        Mode::Gateway => format!(
            "c4mesh configured: mode=gateway routes={}",
            config.routes.len()
        ),
        Mode::Sidecar => format!(
            "c4mesh configured: mode=sidecar namespace={} routes={}",
            config.namespace,
            config.routes.len()
        ),
    }
}

/// FNV-1a of the configuration bytes: VMs with the same configuration share state.
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
