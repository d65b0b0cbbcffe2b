package blob

import (
	"mime"
	"strings"
	"testing"
)

func TestContentTypeFor(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"a/index.html", "text/html; charset=utf-8"},
		{"IMG.JPG", "image/jpeg"},
		{"d.x/notes.txt", "text/plain"},
		{"site.css.gz", "application/gzip"},
		{"noext", DefaultContentType},
		{"dir.d/noext", DefaultContentType},
		{"x.unknownext", DefaultContentType},
		{".bashrc", DefaultContentType},
		{"report.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
	} {
		if got := ContentTypeFor(tc.name); got != tc.want {
			t.Errorf("ContentTypeFor(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The host's mime files must change nothing: an extension /etc/mime.types
// would add stays the default.
func TestContentTypeIgnoresHostTables(t *testing.T) {
	if err := mime.AddExtensionType(".blobfstest", "text/x-host"); err != nil {
		t.Fatal(err)
	}
	if got := ContentTypeFor("f.blobfstest"); got != DefaultContentType {
		t.Errorf("got %q: the host's table leaked in", got)
	}
	for ext, typ := range contentTypes {
		if !strings.HasPrefix(ext, ".") || ext != strings.ToLower(ext) || typ == "" {
			t.Errorf("table entry %q: %q", ext, typ)
		}
	}
}
