package config

import "testing"

// --put-md5 is on unless turned off; --delete-snapshots is off unless on.
func TestSharingSettings(t *testing.T) {
	for _, tc := range []struct {
		args          []string
		env           map[string]string
		putMD5, delSn bool
	}{
		{nil, nil, true, false},
		{[]string{"--put-md5=false"}, nil, false, false},
		{nil, map[string]string{"BLOBFS_PUT_MD5": "false"}, false, false},
		{[]string{"--delete-snapshots"}, nil, true, true},
	} {
		l, err := Parse("mount", tc.args, envOf(tc.env), nil)
		if err != nil {
			t.Fatal(err)
		}
		if l.PutMD5 != tc.putMD5 || l.DeleteSnapshots != tc.delSn {
			t.Errorf("%v %v: put-md5 %v delete-snapshots %v, want %v %v", tc.args, tc.env, l.PutMD5, l.DeleteSnapshots, tc.putMD5, tc.delSn)
		}
	}
}
