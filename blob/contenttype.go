package blob

import (
	"path"
	"strings"
)

// DefaultContentType is what a blob whose extension is not in the table
// gets, as AzCopy and blobfuse2 give it.
const DefaultContentType = "application/octet-stream"

// contentTypes maps lower-case extensions to Content-Types. It is built
// into the binary so that every VM gives a file the same type:
// mime.TypeByExtension also reads the host's /etc/mime.types and the like,
// which differ between distributions. The web formats have Go's built-in
// values (what blobfs wrote before on hosts without those files); the
// rest follow blobfuse2's table (component/azstorage ContentTypes) and
// the IANA registrations AzCopy gets from the same sources.
var contentTypes = map[string]string{
	// Web: Go's built-in mime table.
	".avif": "image/avif",
	".css":  "text/css; charset=utf-8",
	".gif":  "image/gif",
	".htm":  "text/html; charset=utf-8",
	".html": "text/html; charset=utf-8",
	".jpeg": "image/jpeg",
	".jpg":  "image/jpeg",
	".js":   "text/javascript; charset=utf-8",
	".json": "application/json",
	".mjs":  "text/javascript; charset=utf-8",
	".pdf":  "application/pdf",
	".png":  "image/png",
	".svg":  "image/svg+xml",
	".wasm": "application/wasm",
	".webp": "image/webp",
	".xml":  "text/xml; charset=utf-8",
	// Text.
	".txt":  "text/plain",
	".csv":  "text/csv",
	".md":   "text/markdown",
	".rtf":  "application/rtf",
	".ics":  "text/calendar",
	".yaml": "application/yaml",
	".yml":  "application/yaml",
	// Images.
	".bmp":  "image/bmp",
	".ico":  "image/vnd.microsoft.icon",
	".tif":  "image/tiff",
	".tiff": "image/tiff",
	// Audio and video.
	".aac":  "audio/aac",
	".mid":  "audio/midi",
	".midi": "audio/midi",
	".mp3":  "audio/mpeg",
	".oga":  "audio/ogg",
	".ogg":  "audio/ogg",
	".opus": "audio/opus",
	".wav":  "audio/wav",
	".weba": "audio/webm",
	".3gp":  "video/3gpp",
	".3g2":  "video/3gpp2",
	".avi":  "video/x-msvideo",
	".m3u8": "application/vnd.apple.mpegurl",
	".mp4":  "video/mp4",
	".mpeg": "video/mpeg",
	".ogv":  "video/ogg",
	".ts":   "video/mp2t",
	".webm": "video/webm",
	// Fonts.
	".otf":   "font/otf",
	".ttf":   "font/ttf",
	".woff":  "font/woff",
	".woff2": "font/woff2",
	// Documents.
	".doc":  "application/msword",
	".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".odp":  "application/vnd.oasis.opendocument.presentation",
	".ods":  "application/vnd.oasis.opendocument.spreadsheet",
	".odt":  "application/vnd.oasis.opendocument.text",
	".ppt":  "application/vnd.ms-powerpoint",
	".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
	".xls":  "application/vnd.ms-excel",
	".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	".epub": "application/epub+zip",
	// Archives and programs.
	".7z":  "application/x-7z-compressed",
	".bz2": "application/x-bzip2",
	".gz":  "application/gzip",
	".jar": "application/java-archive",
	".rar": "application/vnd.rar",
	".tar": "application/x-tar",
	".tgz": "application/gzip",
	".zip": "application/zip",
	".zst": "application/zstd",
	".sh":  "application/x-sh",
	".exe": "application/x-msdownload",
	".dll": "application/x-msdownload",
	".msi": "application/x-msdownload",
	// Data.
	".parquet": "application/vnd.apache.parquet",
	".avro":    "application/avro",
}

// ContentTypeFor is the Content-Type a new blob named name gets, from its
// extension (case-insensitive) in the built-in table, else
// DefaultContentType.
func ContentTypeFor(name string) string {
	if t, ok := contentTypes[strings.ToLower(path.Ext(name))]; ok {
		return t
	}
	return DefaultContentType
}
