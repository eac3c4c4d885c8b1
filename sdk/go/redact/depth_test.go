package redact

import "testing"

func TestDepth(t *testing.T) {
	for doc, want := range map[string]int{
		`1`:                      0,
		`{}`:                     1,
		`[[1],[[2]]]`:            3,
		`{"a":"[[[{{"}`:          1, // brackets inside strings do not count
		`{"a":"\"[[","b":[{}]}`:  3, // nor after an escaped quote
		`[[[[[[[[[[]]]]]]]]]]`:   10,
		`{"k":[1,{"x":[true]}]}`: 4,
	} {
		if got := Depth([]byte(doc)); got != want {
			t.Errorf("Depth(%s) = %d, want %d", doc, got, want)
		}
	}
}
