package skiplist

import "testing"

// FuzzOps decodes a sequence of operations from bytes, four bytes each
// (operation, then three operands), runs them on a Map and on a Table and
// checks both against their models after every operation.
func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 0, 2, 2, 2, 3, 1, 0, 0, 5, 0, 0, 0})
	f.Add([]byte{10, 1, 1, 1, 10, 2, 2, 2, 6, 0, 0, 0, 11, 0, 9, 0, 7, 3, 0, 0})
	f.Add([]byte{0, 5, 1, 1, 1, 6, 1, 1, 2, 5, 2, 0, 3, 6, 0, 1, 4, 0, 0, 0, 8, 6, 3, 3, 9, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4*2000 {
			data = data[:4*2000]
		}
		m := New[int, int]()
		md := &model{vals: map[int]int{}}
		tt := newTestTable()
		tm := &tableModel{}
		for ; len(data) >= 4; data = data[4:] {
			op, a, b, c := data[0], int(data[1]), int(data[2]), int(data[3])
			applyMapOp(t, m, md, op, a, b)
			checkAgainstModel(t, m, md)
			tt.apply(t, tm, op, a%64, b, c%32)
			tt.check(t, tm)
		}
	})
}
