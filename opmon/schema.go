package opmon

// The records' table. Times are Unix microseconds (0: not reached); steps
// are one text, "name=µs;name=µs" in the order run (stepsText). Records
// are read in (request_in_at, id) order, so every index ends with the
// request time and the id: the time index serves paging, the others a
// filter and paging together. Most exchanges succeed, so error types are
// indexed only where there is one (a query by error type names the
// index's condition). side and succeeded split the records in two or
// three and are filtered over the other indexes' rows.
var (
	sqliteSchema = []string{`
CREATE TABLE opmon_records (
	id INTEGER PRIMARY KEY,
	side TEXT NOT NULL,
	gateway TEXT NOT NULL,
	peer_gateway TEXT NOT NULL,
	request_in_at INTEGER NOT NULL,
	request_out_at INTEGER NOT NULL,
	response_in_at INTEGER NOT NULL,
	response_out_at INTEGER NOT NULL,
	client TEXT NOT NULL,
	service TEXT NOT NULL,
	x_road_id TEXT NOT NULL,
	request_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	issue TEXT NOT NULL,
	represented_party TEXT NOT NULL,
	protocol TEXT NOT NULL,
	method TEXT NOT NULL,
	path TEXT NOT NULL,
	request_bytes INTEGER NOT NULL,
	response_bytes INTEGER NOT NULL,
	status INTEGER NOT NULL,
	succeeded INTEGER NOT NULL,
	error_type TEXT NOT NULL,
	error_message TEXT NOT NULL,
	traceparent TEXT NOT NULL,
	steps TEXT NOT NULL
);
CREATE INDEX opmon_records_at ON opmon_records (request_in_at);
CREATE INDEX opmon_records_client ON opmon_records (client, request_in_at);
CREATE INDEX opmon_records_service ON opmon_records (service, request_in_at);
CREATE INDEX opmon_records_status ON opmon_records (status, request_in_at);
CREATE INDEX opmon_records_error ON opmon_records (error_type, request_in_at) WHERE error_type <> '';`}
	pgSchema = []string{`
CREATE TABLE opmon_records (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	side TEXT NOT NULL,
	gateway TEXT NOT NULL,
	peer_gateway TEXT NOT NULL,
	request_in_at BIGINT NOT NULL,
	request_out_at BIGINT NOT NULL,
	response_in_at BIGINT NOT NULL,
	response_out_at BIGINT NOT NULL,
	client TEXT NOT NULL,
	service TEXT NOT NULL,
	x_road_id TEXT NOT NULL,
	request_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	issue TEXT NOT NULL,
	represented_party TEXT NOT NULL,
	protocol TEXT NOT NULL,
	method TEXT NOT NULL,
	path TEXT NOT NULL,
	request_bytes BIGINT NOT NULL,
	response_bytes BIGINT NOT NULL,
	status INTEGER NOT NULL,
	succeeded BOOLEAN NOT NULL,
	error_type TEXT NOT NULL,
	error_message TEXT NOT NULL,
	traceparent TEXT NOT NULL,
	steps TEXT NOT NULL
);
CREATE INDEX opmon_records_at ON opmon_records (request_in_at, id);
CREATE INDEX opmon_records_client ON opmon_records (client, request_in_at, id);
CREATE INDEX opmon_records_service ON opmon_records (service, request_in_at, id);
CREATE INDEX opmon_records_status ON opmon_records (status, request_in_at, id);
CREATE INDEX opmon_records_error ON opmon_records (error_type, request_in_at, id) WHERE error_type <> '';`}
)

// columns are the stored columns but the id, in the order of insert
// arguments and of query results after the id.
const columns = `side, gateway, peer_gateway, request_in_at, request_out_at, response_in_at, response_out_at, ` +
	`client, service, x_road_id, request_id, user_id, issue, represented_party, protocol, method, path, ` +
	`request_bytes, response_bytes, status, succeeded, error_type, error_message, traceparent, steps`

// nColumns is the number of columns.
const nColumns = 25
