//! The worker's connections: one slab whose entries carry, beside each connection, the loop's two flags for it.
//!
//! An entry is *closed* from the moment [`Worker::close`](super::Worker) deregisters it until the end of the batch,
//! when it is removed: its key cannot be reused while stale events for it may still be buffered, and nothing reads
//! it meanwhile — [`Conns::get`] and [`Conns::get_mut`] see open entries only. An entry is *queued* while its key is
//! in the runnable queue, so it is queued once however many events ask.

use slab::Slab;

use super::Conn;

struct Entry {
    conn: Conn,
    closed: bool,
    queued: bool,
}

#[derive(Default)]
pub(super) struct Conns {
    slab: Slab<Entry>,
}

impl Conns {
    /// The open connection at `key`.
    pub(super) fn get(&self, key: usize) -> Option<&Conn> {
        self.slab.get(key).filter(|e| !e.closed).map(|e| &e.conn)
    }

    pub(super) fn get_mut(&mut self, key: usize) -> Option<&mut Conn> {
        self.slab.get_mut(key).filter(|e| !e.closed).map(|e| &mut e.conn)
    }

    pub(super) fn is_open(&self, key: usize) -> bool {
        self.slab.get(key).is_some_and(|e| !e.closed)
    }

    /// The key the next [`Conns::insert`] will use (a socket is registered under it first).
    pub(super) fn next_key(&self) -> usize {
        self.slab.vacant_key()
    }

    pub(super) fn insert(&mut self, conn: Conn) -> usize {
        self.slab.insert(Entry { conn, closed: false, queued: false })
    }

    /// Marks the entry closed and returns its connection for tearing down; `None` if it was closed already.
    pub(super) fn close(&mut self, key: usize) -> Option<&mut Conn> {
        let entry = self.slab.get_mut(key).filter(|e| !e.closed)?;
        entry.closed = true;
        Some(&mut entry.conn)
    }

    /// Marks an open entry queued; false if it was queued already (or is closed or gone).
    pub(super) fn queue(&mut self, key: usize) -> bool {
        match self.slab.get_mut(key) {
            Some(e) if !e.closed && !e.queued => {
                e.queued = true;
                true
            }
            _ => false,
        }
    }

    /// Takes `key` off the runnable queue's books; false if it is closed or gone (nothing to run).
    pub(super) fn dequeue(&mut self, key: usize) -> bool {
        match self.slab.get_mut(key) {
            Some(e) => {
                e.queued = false;
                !e.closed
            }
            None => false,
        }
    }

    /// Removes a closed entry at the end of the batch; false if there was none.
    pub(super) fn remove(&mut self, key: usize) -> bool {
        self.slab.try_remove(key).is_some()
    }

    /// The open connections.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &Conn)> {
        self.slab.iter().filter(|(_, e)| !e.closed).map(|(k, e)| (k, &e.conn))
    }

    /// Entries, closed ones included (they are still counted until removed).
    pub(super) fn len(&self) -> usize {
        self.slab.len()
    }

    /// After a burst, gives the memory back once the slab is empty.
    pub(super) fn shrink_if_empty(&mut self) {
        if self.slab.is_empty() && self.slab.capacity() > 1024 {
            self.slab.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Conn {
        Conn::Proxy(Box::new(super::super::proxied::Pending {
            stream: None,
            peer: "127.0.0.1:1".parse().unwrap(),
            purpose: super::super::proxied::Purpose::Control { implicit: false },
            deadline: std::time::Instant::now(),
        }))
    }

    // A closed entry is invisible until removed, keeps its key meanwhile, and is neither queued nor closed twice.
    #[test]
    fn closed_entries_are_invisible_until_removed() {
        let mut conns = Conns::default();
        let k = conns.insert(conn());
        assert_eq!(conns.next_key(), k + 1);
        assert!(conns.queue(k));
        assert!(!conns.queue(k), "queued once");
        assert!(conns.close(k).is_some());
        assert!(conns.close(k).is_none(), "closed once");
        assert!(conns.get(k).is_none() && !conns.is_open(k));
        assert!(!conns.dequeue(k), "a closed entry is not run");
        assert!(!conns.queue(k));
        assert_eq!(conns.iter().count(), 0);
        assert_eq!(conns.next_key(), k + 1, "the key stays taken until removed");
        assert!(conns.remove(k));
        assert!(!conns.remove(k));
        assert_eq!(conns.next_key(), k);
    }
}
