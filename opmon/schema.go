package opmon

import (
	"slices"

	"github.com/sampan-exchange/sampan/store"
)

// The records' table. The columns a query filters on are columns;
// everything else is one packed value, detail (see detail.go): a record
// then costs SQLite nine bound values rather than twenty-five, which is
// most of what storing it costs. request_in_at is in Unix microseconds.
// Records are read in (request_in_at, id) order, so every index ends with
// the request time (and, on SQLite, the rowid, which is the id): the time
// index serves paging, the others a filter and paging together. Most
// exchanges succeed, so status and error type are indexed only for the
// failures (status >= 400, error_type <> ”); a query by those names the
// index's condition when it can use it. side and succeeded split the
// records in two and are filtered over the other indexes' rows. Each
// migration has its written rollback beside it (docs/upgrading.md).
var (
	sqliteSchema = []store.Migration{{Up: `
CREATE TABLE opmon_records (
	id INTEGER PRIMARY KEY,
	request_in_at INTEGER NOT NULL,
	side TEXT NOT NULL,
	client TEXT NOT NULL,
	service TEXT NOT NULL,
	status INTEGER NOT NULL,
	succeeded INTEGER NOT NULL,
	error_type TEXT NOT NULL,
	detail BLOB NOT NULL
);
CREATE INDEX opmon_records_at ON opmon_records (request_in_at);
CREATE INDEX opmon_records_client ON opmon_records (client, request_in_at);
CREATE INDEX opmon_records_service ON opmon_records (service, request_in_at);
CREATE INDEX opmon_records_status ON opmon_records (status, request_in_at) WHERE status >= 400;
CREATE INDEX opmon_records_error ON opmon_records (error_type, request_in_at) WHERE error_type <> '';`,
		Down: `DROP TABLE opmon_records;`}}
	pgSchema = []store.Migration{{Up: `
CREATE TABLE opmon_records (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	request_in_at BIGINT NOT NULL,
	side TEXT NOT NULL,
	client TEXT NOT NULL,
	service TEXT NOT NULL,
	status INTEGER NOT NULL,
	succeeded BOOLEAN NOT NULL,
	error_type TEXT NOT NULL,
	detail BYTEA NOT NULL
);
CREATE INDEX opmon_records_at ON opmon_records (request_in_at, id);
CREATE INDEX opmon_records_client ON opmon_records (client, request_in_at, id);
CREATE INDEX opmon_records_service ON opmon_records (service, request_in_at, id);
CREATE INDEX opmon_records_status ON opmon_records (status, request_in_at, id) WHERE status >= 400;
CREATE INDEX opmon_records_error ON opmon_records (error_type, request_in_at, id) WHERE error_type <> '';`,
		Down: `DROP TABLE opmon_records;`}}
)

// columns are the stored columns but the id, in the order of insert
// arguments and of query results after the id.
const columns = `request_in_at, side, client, service, status, succeeded, error_type, detail`

// nColumns is the number of columns.
const nColumns = 8

// SchemaName is the name the monitoring records' schema version is kept
// under (store.OpenDSNNamed): opmon_schema_version.
const SchemaName = "opmon"

// Migrations returns the monitoring records' schema migrations for
// PostgreSQL or SQLite, each with its rollback, for `sampan migrate`.
func Migrations(postgres bool) []store.Migration {
	if postgres {
		return slices.Clone(pgSchema)
	}
	return slices.Clone(sqliteSchema)
}
