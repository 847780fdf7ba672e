package backlite

// #include <backlite.h>
import "C"

// CheckReport is what Check found and, with repair, fixed.
type CheckReport struct {
	Healthy           bool   // nothing is wrong (or everything wrong was repaired)
	IntegrityOK       bool   // SQLite found the structure sound (if not: delete the file, it is a cache)
	Repaired          bool   // repair changed something (removed entries or values, rewrote counters)
	Entries           uint64 // live entries examined
	Damaged           uint64 // entries whose value failed its checksum or was missing
	OrphanValues      uint64 // stored values that no entry refers to
	RecordedCount     uint64 // the file's count before the check; math.MaxUint64 (both) when its counters were damaged
	RecordedTotalSize uint64 // the file's total size before the check; math.MaxUint64 (both) when its counters were damaged
	ActualCount       uint64 // count of the entries that passed
	ActualTotalSize   uint64 // total size of the entries that passed
}

// Check verifies the whole file: SQLite's integrity check, every value's checksum, and
// the counters against a recount. With repair, it also removes damaged entries and
// orphan values and rewrites the counters, in one transaction. What it found is in the
// report; the error is for a check that could not run. It reads every entry: it is
// meant for maintenance, not the hot path.
func (s *Storage) Check(repair bool) (CheckReport, error) {
	h, err := s.acquire()
	if err != nil {
		return CheckReport{}, err
	}
	defer s.release()
	var crepair C.int32_t
	if repair {
		crepair = 1
	}
	var r C.backlite_check_report
	var cerr *C.backlite_error
	rc := C.backlite_storage_check(h, crepair, &r, &cerr)
	if repair {
		writes.Add(1)
	}
	if rc != C.BACKLITE_RESULT_OK {
		return CheckReport{}, takeError(rc, cerr, "Check")
	}
	return CheckReport{
		Healthy: r.healthy != 0, IntegrityOK: r.integrity_ok != 0, Repaired: r.repaired != 0,
		Entries: uint64(r.entries), Damaged: uint64(r.damaged), OrphanValues: uint64(r.orphan_values),
		RecordedCount: uint64(r.recorded_count), RecordedTotalSize: uint64(r.recorded_total_size),
		ActualCount: uint64(r.actual_count), ActualTotalSize: uint64(r.actual_total_size),
	}, nil
}

// Vacuum rebuilds the file so that the space of deleted entries goes back to the file
// system, and truncates the write-ahead log. ErrBusy if other connections' readers kept
// the log from being truncated (the rebuild itself is done).
func (s *Storage) Vacuum() error {
	h, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	var cerr *C.backlite_error
	if rc := C.backlite_storage_vacuum(h, &cerr); rc != C.BACKLITE_RESULT_OK {
		return takeError(rc, cerr, "Vacuum")
	}
	return nil
}

// The C structs that Stats and CheckReport copy field by field, as this package knows
// them. A conversion between struct types compiles only when their field names, types
// and order are identical, so each line below fails to compile when the header's struct
// gains, loses, renames, reorders or retypes a field: update the copy, then this.
type (
	cStatsLayout struct {
		count, total_size, max_size, hits, misses, evictions, expirations C.uint64_t
	}
	cCheckReportLayout struct {
		healthy, integrity_ok, repaired     C.int32_t
		entries, damaged, orphan_values     C.uint64_t
		recorded_count, recorded_total_size C.uint64_t
		actual_count, actual_total_size     C.uint64_t
	}
)

var (
	_ = cStatsLayout(C.backlite_stats{})
	_ = cCheckReportLayout(C.backlite_check_report{})
)
