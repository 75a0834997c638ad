//! The in-process broker, the embedded default: queues and exchanges in memory, on tokio.
//!
//! - One mutex guards all state; no lock is held across an `await`, so every operation is short.
//! - A queue keeps one FIFO per priority (0–3); dispatch takes from the highest non-empty one.
//! - Competing consumers get deliveries round-robin, each up to its prefetch of unacknowledged ones.
//! - Unacknowledged deliveries are remembered per consumer; when the consumer goes away they go back to
//!   the front of their queue, marked redelivered. Nothing acknowledged-for is dropped while the process
//!   lives; **nothing survives a restart** (persistence is future work).
//! - Memory is bounded: a queue holds at most `max_messages_per_queue` messages (ready + unacknowledged)
//!   and a publish that would exceed it is refused with [`BrokerError::QueueFull`] before anything is
//!   enqueued; bodies are limited to `max_message_bytes`.
//! - Expirations: a message past its TTL is never delivered; a sweeper task drops expired messages from
//!   waiting queues every `sweep_interval` and reports them as undeliverable.

use crate::broker::{Acker, ConsumerGuard as AnyGuard};
use crate::message::{check_entity_name, check_name};
use crate::{
    routing, Binding, Broker, BrokerError, ConsumeOptions, Consumer, Delivery, ExchangeKind, Message, PublishOutcome,
    Target, Undeliverable, UndeliverableReason, UndeliverableReceiver,
};
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

/// Limits and timings of an [`InProcessBroker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProcessConfig {
    /// The most messages (ready plus unacknowledged) one queue holds; publishing beyond is refused.
    pub max_messages_per_queue: usize,
    /// The largest message body, in bytes.
    pub max_message_bytes: usize,
    /// How often waiting queues are swept for expired messages.
    pub sweep_interval: Duration,
    /// How many undeliverable reports a slow subscriber may lag behind before it skips some.
    pub undeliverable_capacity: usize,
}

impl Default for InProcessConfig {
    fn default() -> Self {
        InProcessConfig {
            max_messages_per_queue: 10_000,
            max_message_bytes: 16 * 1024 * 1024,
            sweep_interval: Duration::from_millis(100),
            undeliverable_capacity: 1024,
        }
    }
}

/// The in-process broker. Cheap to clone (a shared handle).
#[derive(Clone)]
pub struct InProcessBroker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for InProcessBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBroker").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

struct Inner {
    config: InProcessConfig,
    state: Mutex<State>,
    undeliverable: broadcast::Sender<Undeliverable>,
}

#[derive(Default)]
struct State {
    closed: bool,
    queues: HashMap<String, Queue>,
    exchanges: HashMap<String, Exchange>,
    next_id: u64,
}

struct Exchange {
    kind: ExchangeKind,
    /// (queue, binding) pairs, in binding order.
    bindings: Vec<(String, Binding)>,
}

#[derive(Default)]
struct Queue {
    /// The consumer owning a temporary queue.
    owner: Option<u64>,
    /// Ready messages, one FIFO per priority.
    ready: [VecDeque<Pending>; 4],
    ready_len: usize,
    /// Delivered, not yet settled: delivery tag → (consumer id, message).
    unacked: HashMap<u64, (u64, Pending)>,
    consumers: Vec<Slot>,
    /// Where the round-robin continues.
    cursor: usize,
    /// No ready message expires before this (a lower bound; the sweeper refreshes it).
    earliest_deadline: Option<Instant>,
}

struct Pending {
    message: Message,
    deadline: Option<Instant>,
    exchange: String,
    routing_key: String,
    redelivered: bool,
}

struct Slot {
    id: u64,
    prefetch: usize,
    in_flight: usize,
    tx: mpsc::UnboundedSender<Result<Delivery, BrokerError>>,
}

impl Queue {
    fn len(&self) -> usize {
        self.ready_len + self.unacked.len()
    }

    fn push_back(&mut self, pending: Pending) {
        if let Some(deadline) = pending.deadline {
            self.earliest_deadline = Some(self.earliest_deadline.map_or(deadline, |d| d.min(deadline)));
        }
        self.ready[usize::from(pending.message.priority.value())].push_back(pending);
        self.ready_len += 1;
    }

    fn push_front(&mut self, pending: Pending) {
        if let Some(deadline) = pending.deadline {
            self.earliest_deadline = Some(self.earliest_deadline.map_or(deadline, |d| d.min(deadline)));
        }
        self.ready[usize::from(pending.message.priority.value())].push_front(pending);
        self.ready_len += 1;
    }

    /// The next unexpired message by priority; expired ones met on the way are reported.
    fn pop(&mut self, name: &str, now: Instant, reports: &mut Vec<Undeliverable>) -> Option<Pending> {
        for level in self.ready.iter_mut().rev() {
            while let Some(pending) = level.pop_front() {
                self.ready_len -= 1;
                if pending.deadline.is_some_and(|d| now > d) {
                    reports.push(report(pending, UndeliverableReason::Expired, Some(name)));
                    continue;
                }
                return Some(pending);
            }
        }
        None
    }

    /// Drops every expired ready message, reporting it.
    fn sweep(&mut self, name: &str, now: Instant, reports: &mut Vec<Undeliverable>) {
        if self.earliest_deadline.is_none_or(|d| now <= d) {
            return;
        }
        let mut earliest: Option<Instant> = None;
        for level in self.ready.iter_mut() {
            let mut kept = VecDeque::with_capacity(level.len());
            for pending in level.drain(..) {
                match pending.deadline {
                    Some(d) if now > d => reports.push(report(pending, UndeliverableReason::Expired, Some(name))),
                    Some(d) => {
                        earliest = Some(earliest.map_or(d, |e| e.min(d)));
                        kept.push_back(pending);
                    }
                    None => kept.push_back(pending),
                }
            }
            *level = kept;
        }
        self.ready_len = self.ready.iter().map(VecDeque::len).sum();
        self.earliest_deadline = earliest;
    }
}

fn report(pending: Pending, reason: UndeliverableReason, queue: Option<&str>) -> Undeliverable {
    Undeliverable {
        message: pending.message,
        reason,
        exchange: pending.exchange,
        routing_key: pending.routing_key,
        queue: queue.map(str::to_string),
    }
}

/// How a delivery is settled.
pub(crate) enum Settle {
    Ack,
    Nack { requeue: bool },
}

/// Settles one in-process delivery.
#[derive(Debug)]
pub(crate) struct AckHandle {
    broker: Weak<Inner>,
    queue: String,
    consumer: u64,
    tag: u64,
}

impl AckHandle {
    pub(crate) fn settle(self, how: Settle) -> Result<(), BrokerError> {
        let inner = self.broker.upgrade().ok_or(BrokerError::Closed)?;
        let mut reports = Vec::new();
        {
            let mut state = inner.lock();
            let queue = state.queues.get_mut(&self.queue).ok_or(BrokerError::StaleDelivery(self.tag))?;
            match queue.unacked.get(&self.tag) {
                Some((consumer, _)) if *consumer == self.consumer => {}
                _ => return Err(BrokerError::StaleDelivery(self.tag)),
            }
            let Some((_, mut pending)) = queue.unacked.remove(&self.tag) else {
                return Err(BrokerError::StaleDelivery(self.tag));
            };
            if let Some(slot) = queue.consumers.iter_mut().find(|s| s.id == self.consumer) {
                slot.in_flight = slot.in_flight.saturating_sub(1);
            }
            match how {
                Settle::Ack => {}
                Settle::Nack { requeue: true } => {
                    pending.redelivered = true;
                    queue.push_front(pending);
                }
                Settle::Nack { requeue: false } => {
                    reports.push(report(pending, UndeliverableReason::Rejected, Some(&self.queue)));
                }
            }
            let mut next_id = state.next_id;
            if let Some(queue) = state.queues.get_mut(&self.queue) {
                dispatch(&inner, &self.queue, queue, Instant::now(), &mut next_id, &mut reports);
            }
            state.next_id = next_id;
        }
        inner.send_reports(reports);
        Ok(())
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InProcessBroker")
    }
}

/// Removes an in-process consumer when dropped.
pub(crate) struct ConsumerGuard {
    broker: Weak<Inner>,
    queue: String,
    consumer: u64,
}

impl Drop for ConsumerGuard {
    fn drop(&mut self) {
        let Some(inner) = self.broker.upgrade() else { return };
        let mut reports = Vec::new();
        {
            let mut state = inner.lock();
            let State { queues, exchanges, next_id, .. } = &mut *state;
            let Some(queue) = queues.get_mut(&self.queue) else { return };
            queue.consumers.retain(|s| s.id != self.consumer);
            if queue.owner == Some(self.consumer) {
                queues.remove(&self.queue);
                remove_bindings(exchanges, &self.queue);
                return;
            }
            let mut mine: Vec<u64> =
                queue.unacked.iter().filter(|(_, (c, _))| *c == self.consumer).map(|(tag, _)| *tag).collect();
            // Back to the front in their original order: push the newest first.
            mine.sort_unstable_by(|a, b| b.cmp(a));
            for tag in mine {
                if let Some((_, mut pending)) = queue.unacked.remove(&tag) {
                    pending.redelivered = true;
                    queue.push_front(pending);
                }
            }
            dispatch(&inner, &self.queue, queue, Instant::now(), next_id, &mut reports);
        }
        inner.send_reports(reports);
    }
}

fn remove_bindings(exchanges: &mut HashMap<String, Exchange>, queue: &str) {
    for exchange in exchanges.values_mut() {
        exchange.bindings.retain(|(q, _)| q != queue);
    }
}

/// Hands ready messages to consumers with free prefetch, round-robin.
fn dispatch(
    inner: &Arc<Inner>,
    name: &str,
    queue: &mut Queue,
    now: Instant,
    next_id: &mut u64,
    reports: &mut Vec<Undeliverable>,
) {
    while queue.ready_len > 0 && !queue.consumers.is_empty() {
        let n = queue.consumers.len();
        let Some(index) = (0..n).map(|i| (queue.cursor + i) % n).find(|&i| {
            let slot = &queue.consumers[i];
            slot.in_flight < slot.prefetch
        }) else {
            return;
        };
        let Some(pending) = queue.pop(name, now, reports) else { return };
        *next_id += 1;
        let tag = *next_id;
        let slot = &mut queue.consumers[index];
        let delivery = Delivery {
            message: pending.message.clone(),
            queue: name.to_string(),
            exchange: pending.exchange.clone(),
            routing_key: pending.routing_key.clone(),
            redelivered: pending.redelivered,
            acker: Acker::InProcess(AckHandle {
                broker: Arc::downgrade(inner),
                queue: name.to_string(),
                consumer: slot.id,
                tag,
            }),
        };
        if slot.tx.send(Ok(delivery)).is_err() {
            // The consumer's receiver is gone and its guard is about to remove it: keep the message.
            queue.consumers.remove(index);
            queue.push_front(pending);
            continue;
        }
        slot.in_flight += 1;
        let consumer = slot.id;
        queue.unacked.insert(tag, (consumer, pending));
        queue.cursor = (index + 1) % n;
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that matters more
        // than stopping the broker would; keep serving.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn send_reports(&self, reports: Vec<Undeliverable>) {
        for report in reports {
            // No subscriber is fine: nobody asked.
            let _ = self.undeliverable.send(report);
        }
    }

    fn sweep(self: &Arc<Self>) {
        let now = Instant::now();
        let mut reports = Vec::new();
        {
            let mut state = self.lock();
            for (name, queue) in state.queues.iter_mut() {
                queue.sweep(name, now, &mut reports);
            }
        }
        self.send_reports(reports);
    }
}

impl InProcessBroker {
    /// A new, empty broker. Must be called inside a tokio runtime (it spawns the expiry sweeper, which
    /// stops when the broker is dropped).
    pub fn new(config: InProcessConfig) -> Result<InProcessBroker, BrokerError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BrokerError::NoRuntime)?;
        let (undeliverable, _) = broadcast::channel(config.undeliverable_capacity.max(1));
        let interval = config.sweep_interval.max(Duration::from_millis(1));
        let inner = Arc::new(Inner { config, state: Mutex::new(State::default()), undeliverable });
        let weak = Arc::downgrade(&inner);
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.lock().closed {
                    return;
                }
                inner.sweep();
            }
        });
        Ok(InProcessBroker { inner })
    }

    /// The configuration in force.
    pub fn config(&self) -> &InProcessConfig {
        &self.inner.config
    }

    /// How many messages a queue holds (ready plus unacknowledged); `None` if it does not exist.
    pub fn queue_len(&self, name: &str) -> Option<usize> {
        self.inner.lock().queues.get(name).map(Queue::len)
    }

    fn open(&self) -> Result<MutexGuard<'_, State>, BrokerError> {
        let state = self.inner.lock();
        if state.closed {
            Err(BrokerError::Closed)
        } else {
            Ok(state)
        }
    }

    fn add_consumer(
        &self,
        state: &mut State,
        name: &str,
        options: &ConsumeOptions,
        temporary: bool,
    ) -> Result<Consumer, BrokerError> {
        state.next_id += 1;
        let id = state.next_id;
        let mut next_id = state.next_id;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut reports = Vec::new();
        {
            let queue = if temporary {
                state.queues.entry(name.to_string()).or_insert_with(|| Queue { owner: Some(id), ..Queue::default() })
            } else {
                state.queues.get_mut(name).ok_or_else(|| BrokerError::QueueNotFound(name.to_string()))?
            };
            queue.consumers.push(Slot { id, prefetch: usize::from(options.prefetch.max(1)), in_flight: 0, tx });
            dispatch(&self.inner, name, queue, Instant::now(), &mut next_id, &mut reports);
        }
        state.next_id = next_id;
        self.inner.send_reports(reports);
        let guard = ConsumerGuard { broker: Arc::downgrade(&self.inner), queue: name.to_string(), consumer: id };
        Ok(Consumer::new(name.to_string(), format!("ctag-{id}"), rx, AnyGuard::InProcess(guard)))
    }
}

#[async_trait]
impl Broker for InProcessBroker {
    fn backend(&self) -> &'static str {
        "in-process"
    }

    async fn declare_queue(&self, name: &str) -> Result<(), BrokerError> {
        check_entity_name("queue", name)?;
        let mut state = self.open()?;
        match state.queues.get(name) {
            Some(queue) if queue.owner.is_some() => {
                Err(BrokerError::Conflict(format!("queue {name:?} exists as a temporary queue")))
            }
            Some(_) => Ok(()),
            None => {
                state.queues.insert(name.to_string(), Queue::default());
                Ok(())
            }
        }
    }

    async fn queue_exists(&self, name: &str) -> Result<bool, BrokerError> {
        check_name("queue", name)?;
        Ok(self.open()?.queues.contains_key(name))
    }

    async fn delete_queue(&self, name: &str) -> Result<(), BrokerError> {
        check_name("queue", name)?;
        let mut state = self.open()?;
        // Dropping the queue drops its consumers' senders: their streams end.
        state.queues.remove(name);
        remove_bindings(&mut state.exchanges, name);
        Ok(())
    }

    async fn declare_exchange(&self, name: &str, kind: ExchangeKind) -> Result<(), BrokerError> {
        check_entity_name("exchange", name)?;
        let mut state = self.open()?;
        match state.exchanges.get(name) {
            Some(existing) if existing.kind != kind => Err(BrokerError::Conflict(format!(
                "exchange {name:?} exists as {}, not {}",
                existing.kind.as_str(),
                kind.as_str()
            ))),
            Some(_) => Ok(()),
            None => {
                state.exchanges.insert(name.to_string(), Exchange { kind, bindings: Vec::new() });
                Ok(())
            }
        }
    }

    async fn delete_exchange(&self, name: &str) -> Result<(), BrokerError> {
        check_name("exchange", name)?;
        self.open()?.exchanges.remove(name);
        Ok(())
    }

    async fn bind_queue(&self, queue: &str, exchange: &str, binding: &Binding) -> Result<(), BrokerError> {
        check_name("queue", queue)?;
        check_name("exchange", exchange)?;
        check_name("routing key", &binding.routing_key)?;
        let mut state = self.open()?;
        if !state.queues.contains_key(queue) {
            return Err(BrokerError::QueueNotFound(queue.to_string()));
        }
        let ex = state.exchanges.get_mut(exchange).ok_or_else(|| BrokerError::ExchangeNotFound(exchange.into()))?;
        if !ex.bindings.iter().any(|(q, b)| q == queue && b == binding) {
            ex.bindings.push((queue.to_string(), binding.clone()));
        }
        Ok(())
    }

    async fn unbind_queue(&self, queue: &str, exchange: &str, binding: &Binding) -> Result<(), BrokerError> {
        check_name("queue", queue)?;
        check_name("exchange", exchange)?;
        let mut state = self.open()?;
        if let Some(ex) = state.exchanges.get_mut(exchange) {
            ex.bindings.retain(|(q, b)| !(q == queue && b == binding));
        }
        Ok(())
    }

    async fn publish(&self, target: &Target, message: Message) -> Result<PublishOutcome, BrokerError> {
        message.validate()?;
        let max = self.inner.config.max_message_bytes;
        if message.body.len() > max {
            return Err(BrokerError::MessageTooLarge { size: message.body.len(), max });
        }
        let now = Instant::now();
        let deadline = message.expiration_ms.and_then(|ms| now.checked_add(Duration::from_millis(ms)));
        let mut reports = Vec::new();
        let outcome = {
            let mut state = self.open()?;
            let (exchange, routing_key, targets): (&str, &str, Vec<String>) = match target {
                // The default exchange (`""`) routes to the queue named by the routing key, as in AMQP.
                Target::Exchange { name, routing_key } if name.is_empty() => {
                    check_name("routing key", routing_key)?;
                    let found = state.queues.contains_key(routing_key.as_str());
                    ("", routing_key.as_str(), if found { vec![routing_key.clone()] } else { Vec::new() })
                }
                Target::Queue(name) => {
                    check_name("queue", name)?;
                    let found = state.queues.contains_key(name.as_str());
                    ("", name.as_str(), if found { vec![name.clone()] } else { Vec::new() })
                }
                Target::Exchange { name, routing_key } => {
                    check_name("exchange", name)?;
                    check_name("routing key", routing_key)?;
                    let ex = state.exchanges.get(name).ok_or_else(|| BrokerError::ExchangeNotFound(name.clone()))?;
                    let mut queues: Vec<String> = Vec::new();
                    for (queue, binding) in &ex.bindings {
                        if routing::matches(ex.kind, binding, routing_key, &message.headers) && !queues.contains(queue)
                        {
                            queues.push(queue.clone());
                        }
                    }
                    (name.as_str(), routing_key.as_str(), queues)
                }
            };
            let pending = |message: Message| Pending {
                message,
                deadline,
                exchange: exchange.to_string(),
                routing_key: routing_key.to_string(),
                redelivered: false,
            };
            if targets.is_empty() {
                reports.push(report(pending(message), UndeliverableReason::Unroutable, None));
                PublishOutcome::Unroutable
            } else {
                let limit = self.inner.config.max_messages_per_queue;
                for name in &targets {
                    if state.queues.get(name).is_some_and(|q| q.len() >= limit) {
                        return Err(BrokerError::QueueFull { queue: name.clone(), max: limit });
                    }
                }
                let mut next_id = state.next_id;
                for name in &targets {
                    if let Some(queue) = state.queues.get_mut(name) {
                        queue.push_back(pending(message.clone()));
                        dispatch(&self.inner, name, queue, now, &mut next_id, &mut reports);
                    }
                }
                state.next_id = next_id;
                PublishOutcome::Routed
            }
        };
        self.inner.send_reports(reports);
        Ok(outcome)
    }

    async fn consume(&self, queue: &str, options: &ConsumeOptions) -> Result<Consumer, BrokerError> {
        check_name("queue", queue)?;
        let mut state = self.open()?;
        self.add_consumer(&mut state, queue, options, false)
    }

    async fn consume_temporary(&self, prefix: &str, options: &ConsumeOptions) -> Result<Consumer, BrokerError> {
        let name = crate::temporary_name(prefix);
        check_entity_name("queue", &name)?;
        let mut state = self.open()?;
        if state.queues.contains_key(&name) {
            return Err(BrokerError::Conflict(format!("queue {name:?} exists")));
        }
        self.add_consumer(&mut state, &name, options, true)
    }

    fn undeliverable(&self) -> UndeliverableReceiver {
        UndeliverableReceiver::new(self.inner.undeliverable.subscribe())
    }

    async fn close(&self) -> Result<(), BrokerError> {
        let mut state = self.inner.lock();
        state.closed = true;
        for queue in state.queues.values_mut() {
            queue.consumers.clear();
        }
        Ok(())
    }
}
