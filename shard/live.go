package shard

import "github.com/dgraph-io/badger/v4"

// Live is what a running server reports about its store on every metrics
// scrape: counters and Badger's size estimates, without reading a key.
type Live struct {
	AuditRecords int    // records stored
	AuditDropped uint64 // records Audit dropped since Open (queue full or store closed)
	LSMBytes     int64  // Badger's estimate of its tables
	VLogBytes    int64  // Badger's estimate of its value log
}

// Live returns the store's counters and size estimates. Unlike Stats it
// does not iterate, so it is cheap enough for every scrape. It is safe
// for concurrent use, and returns ErrClosed after Close.
func (st *Store) Live() (Live, error) {
	if st.closed.Load() {
		return Live{}, ErrClosed
	}
	l := Live{AuditRecords: int(st.audit.count.Load()), AuditDropped: st.audit.dropped.Load()}
	st.withDB(func(db *badger.DB) error {
		l.LSMBytes, l.VLogBytes = db.Size()
		return nil
	})
	return l, nil
}
