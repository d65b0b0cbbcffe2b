// Package config holds every blobfs setting once: the Settings struct below
// is the table. Each field's tags give its flag and YAML key, environment
// variables, default, group and help; flags, environment lookup, the YAML
// config file and the README's configuration reference are all derived from
// it, so that a setting cannot mean different things in different places.
//
// Precedence, lowest to highest: built-in default, config file, environment,
// command-line flag.
package config

// Settings is the table of settings.
//
// Tags:
//
//	key:     flag name and YAML key ("-": no flag and not allowed in the file)
//	env:     environment variables, first match wins
//	default: default value, in the same syntax as the flag
//	defdoc:  how the default is shown when it is computed at run time
//	group:   section in --help and in the README
//	cmds:    subcommands that take it (default "mount,check")
//	secret:  never printed, logged or accepted in the file
//	help:    one line of help
type Settings struct {
	// Storage
	Account         string `key:"account" env:"BLOBFS_ACCOUNT,AZURE_STORAGE_ACCOUNT" group:"Storage" help:"storage account name (3-24 lowercase letters and digits)"`
	Container       string `key:"container" env:"BLOBFS_CONTAINER" group:"Storage" help:"blob container to mount"`
	BlobEndpoint    string `key:"blob-endpoint" env:"BLOBFS_BLOB_ENDPOINT" defdoc:"https://{account}.blob.core.windows.net" group:"Storage" help:"blob service URL; path-style URLs such as Azurite's http://127.0.0.1:10000/devstoreaccount1 work; plain http only to loopback"`
	CreateContainer bool   `key:"create-container" env:"BLOBFS_CREATE_CONTAINER" group:"Storage" help:"create the container when it does not exist (emulators, first runs)"`

	// Authentication
	AuthMode           string   `key:"auth-mode" env:"BLOBFS_AUTH_MODE" default:"msi-key" group:"Authentication" help:"msi-key: managed identity lists the account keys through ARM; msi: managed-identity bearer token; key: account key; sas: SAS token"`
	Subscription       string   `key:"subscription" env:"BLOBFS_SUBSCRIPTION,AZURE_SUBSCRIPTION_ID" defdoc:"the VM's, from instance metadata" group:"Authentication" help:"subscription of the storage account (msi-key)"`
	ResourceGroup      string   `key:"resource-group" env:"BLOBFS_RESOURCE_GROUP" defdoc:"the VM's, else found by listing the subscription's accounts" group:"Authentication" help:"resource group of the storage account (msi-key)"`
	ClientID           string   `key:"client-id" env:"BLOBFS_CLIENT_ID,AZURE_CLIENT_ID" group:"Authentication" help:"client ID of the user-assigned identity to use (when the VM has several)"`
	ObjectID           string   `key:"object-id" env:"BLOBFS_OBJECT_ID" group:"Authentication" help:"object ID of the user-assigned identity to use"`
	IdentityResourceID string   `key:"identity-resource-id" env:"BLOBFS_IDENTITY_RESOURCE_ID" group:"Authentication" help:"ARM resource ID of the user-assigned identity to use"`
	AccountKeyFile     string   `key:"account-key-file" env:"BLOBFS_ACCOUNT_KEY_FILE" group:"Authentication" help:"file holding the account key (auth-mode key)"`
	AccountKey         string   `key:"-" env:"AZURE_STORAGE_KEY" secret:"true" group:"Authentication" help:"the account key itself (auth-mode key); environment only, so it never shows in ps or a file"`
	SASFile            string   `key:"sas-file" env:"BLOBFS_SAS_FILE" group:"Authentication" help:"file holding a SAS token (auth-mode sas)"`
	SASToken           string   `key:"-" env:"AZURE_STORAGE_SAS_TOKEN" secret:"true" group:"Authentication" help:"the SAS token itself (auth-mode sas); environment only"`
	IMDSEndpoint       string   `key:"imds-endpoint" env:"BLOBFS_IMDS_ENDPOINT,AZURE_POD_IDENTITY_AUTHORITY_HOST" default:"http://169.254.169.254" group:"Authentication" help:"instance metadata service (managed identity)"`
	AuthWait           Duration `key:"auth-wait" env:"BLOBFS_AUTH_WAIT" default:"100s" group:"Authentication" help:"how long to keep retrying IMDS (and up to 60s ARM) while they are unreachable or busy, e.g. during boot"`
	ARMEndpoint        string   `key:"arm-endpoint" env:"BLOBFS_ARM_ENDPOINT" default:"https://management.azure.com" group:"Authentication" help:"Azure Resource Manager (msi-key)"`

	// Mount
	ReadOnly    bool     `key:"read-only" env:"BLOBFS_READ_ONLY" group:"Mount" help:"refuse every change"`
	UID         int      `key:"uid" env:"BLOBFS_UID" default:"-1" defdoc:"the mounting user" group:"Mount" help:"owner of the files"`
	GID         int      `key:"gid" env:"BLOBFS_GID" default:"-1" defdoc:"the mounting user's group" group:"Mount" help:"group of the files"`
	FileMode    Mode     `key:"file-mode" env:"BLOBFS_FILE_MODE" default:"0644" group:"Mount" help:"permissions of files that have none stored"`
	DirMode     Mode     `key:"dir-mode" env:"BLOBFS_DIR_MODE" default:"0755" group:"Mount" help:"permissions of directories that have none stored"`
	Umask       Mode     `key:"umask" env:"BLOBFS_UMASK" default:"0000" group:"Mount" help:"bits cleared from every permission shown"`
	NonEmpty    bool     `key:"nonempty" env:"BLOBFS_NONEMPTY" group:"Mount" help:"mount over a directory that has files in it, which the mount hides until it is unmounted (refused otherwise)"`
	AllowOther  bool     `key:"allow-other" env:"BLOBFS_ALLOW_OTHER" group:"Mount" help:"let other users than the mounting one in (non-root: needs user_allow_other in /etc/fuse.conf)"`
	AttrTTL     Duration `key:"attr-ttl" env:"BLOBFS_ATTR_TTL" default:"30s" group:"Mount" help:"how long file attributes are trusted before asking the service again (0: always ask)"`
	EntryTTL    Duration `key:"entry-ttl" env:"BLOBFS_ENTRY_TTL" default:"30s" group:"Mount" help:"how long name lookups and directory listings are reused; changes by other clients show within this (0: always list)"`
	NegativeTTL Duration `key:"negative-ttl" env:"BLOBFS_NEGATIVE_TTL" default:"5s" group:"Mount" help:"how long a name found absent stays absent (0: always look again)"`
	DirectIO    bool     `key:"direct-io" env:"BLOBFS_DIRECT_IO" group:"Mount" help:"keep no kernel page cache of file data: large copies cost less memory and CPU, but every read goes to the service, also of a file just read (like rclone's --direct-io, blobfuse2's -o direct_io); mmap still works on Linux 6.6 and later"`
	FuseDebug   bool     `key:"fuse-debug" env:"BLOBFS_FUSE_DEBUG" group:"Mount" help:"log every FUSE request (very verbose)"`

	// Cache and transfers
	CacheDir    string `key:"cache-dir" env:"BLOBFS_CACHE_DIR" defdoc:"/var/cache/blobfs/ACCOUNT/CONTAINER as root, else ~/.cache/blobfs/ACCOUNT/CONTAINER" group:"Cache" help:"private directory where data waiting for upload is staged; kept across restarts so nothing is lost"`
	CacheSize   Size   `key:"cache-size" env:"BLOBFS_CACHE_SIZE" default:"10GiB" group:"Cache" help:"most disk space the cache may use"`
	ReadCache   bool   `key:"read-cache" env:"BLOBFS_READ_CACHE" default:"true" group:"Cache" help:"keep what is read and written in CACHE-DIR/read-cache, within --cache-size (staged data first), and read it from there while the blob's ETag is unchanged, also after a remount; --read-cache=false reads every byte from the service"`
	BlockSize   Size   `key:"block-size" env:"BLOBFS_BLOCK_SIZE" default:"8MiB" group:"Cache" help:"size of the blocks uploaded and downloaded"`
	Concurrency int    `key:"concurrency" env:"BLOBFS_CONCURRENCY" default:"8" group:"Cache" help:"parallel block transfers per file"`

	// Sharing the container with other tools (docs/SHARING.md)
	PutMD5          bool `key:"put-md5" env:"BLOBFS_PUT_MD5" default:"true" group:"Cache" help:"store the whole blob's MD5 with every blob a commit creates or replaces, hashed as the data is written, so that AzCopy --check-md5 and rclone check can verify it (on by default; --put-md5=false spends no CPU on hashing)"`
	DeleteSnapshots bool `key:"delete-snapshots" env:"BLOBFS_DELETE_SNAPSHOTS" group:"Mount" help:"let rm and mv delete a blob's snapshots with it (mv: the source's); without it, removing or renaming a blob that has snapshots, or a directory holding one, fails with EBUSY and a log line naming them"`

	// Retries of the blob service
	RetryBudget         Duration `key:"retry-budget" env:"BLOBFS_RETRY_BUDGET" default:"2m" group:"Cache" help:"longest time one REST call may spend retrying while the service is unreachable, failing or throttling; an outage shorter than this is invisible, a longer one fails the call with EIO"`
	RetryAttemptTimeout Duration `key:"retry-attempt-timeout" env:"BLOBFS_RETRY_ATTEMPT_TIMEOUT" default:"30s" group:"Cache" help:"longest silence tolerated within one attempt (sending, waiting for the answer, reading it) before the attempt is abandoned and retried"`

	// Running
	Foreground     bool     `key:"foreground" env:"BLOBFS_FOREGROUND" group:"Running" help:"stay attached instead of returning once the mount is ready (systemd Type=simple/notify, debugging)"`
	Config         string   `key:"config" env:"BLOBFS_CONFIG" cmds:"mount,check" file:"no" group:"Running" help:"YAML file with any of these settings, by their flag names; unknown keys are errors"`
	RunDir         string   `key:"run-dir" env:"BLOBFS_RUN_DIR" defdoc:"/run/blobfs as root, else $XDG_RUNTIME_DIR/blobfs or /tmp/blobfs-UID" cmds:"mount,check,unmount,stats" group:"Running" help:"directory of the control sockets that blobfs stats and blobfs unmount use"`
	UnmountTimeout Duration `key:"unmount-timeout" env:"BLOBFS_UNMOUNT_TIMEOUT" default:"10m" group:"Running" help:"on SIGTERM or unmount, how long to wait for pending uploads before leaving them staged in the cache"`
	LogLevel       string   `key:"log-level" env:"BLOBFS_LOG_LEVEL" default:"info" cmds:"mount,check,unmount,stats" group:"Logging" help:"debug, info, warn or error"`
	LogFormat      string   `key:"log-format" env:"BLOBFS_LOG_FORMAT" default:"text" group:"Logging" help:"text or json"`
	LogFile        string   `key:"log-file" env:"BLOBFS_LOG_FILE" defdoc:"stderr with --foreground, else syslog (journald), else CACHE-DIR/blobfs.log" group:"Logging" help:"a file path (reopened on SIGHUP), 'stderr' or 'syslog'"`
	MetricsAddr    string   `key:"metrics-addr" env:"BLOBFS_METRICS_ADDR" group:"Metrics" help:"serve Prometheus metrics at http://ADDR/metrics; a bare :PORT binds to 127.0.0.1 (off by default)"`
	WriteProbe     bool     `key:"write-probe" env:"BLOBFS_WRITE_PROBE" cmds:"check" group:"Check" help:"also write, read back and delete a small probe blob"`
}
