module github.com/blobfs/blobfs

go 1.26.8

require (
	github.com/hanwen/go-fuse/v2 v2.12.1
	github.com/sirupsen/logrus v1.10.2
	golang.org/x/sync v0.25.0
	golang.org/x/sys v0.28.0
	gopkg.in/yaml.v3 v3.0.1
)
