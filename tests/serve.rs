//! `clearing serve` over real loopback HTTP: the rights look-up answered
//! from the entitlement stage's state of a real process on a local log, bad
//! input refused with the pipeline's codes, a rights update published while
//! no claim flows answered at once (the records the stage has not applied
//! yet are read by the look-up), a clean stop on SIGTERM, a question that
//! finds the readers taken answered 503 at once, and the threads' priorities.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clearing_pipeline::bus::local::LocalLog;
use clearing_pipeline::domain::FseInput;
use clearing_pipeline::events::SchemaRegistry;
use clearing_pipeline::pki::{PkiRecord, SignatureAlg, SigningKey};
use clearing_pipeline::pseudonym::PseudonymKey;
use clearing_pipeline::runtime::ingest::Ingest;
use common::clearing;
use common::dataset::DataSet;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A `clearing serve` process on `bus`, its address read from its stdout.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// With small bodies only (6 KiB: a lot of seven FSEs, prescriptions
    /// included, fits), so that the limit is easy to cross, and no signature
    /// asked (`signed_questions_…` checks the signatures).
    fn start(bus: &Path) -> Server {
        Server::start_with(bus, &["--max-body-bytes", "6144", "--auth", "none"])
    }

    fn start_with(bus: &Path, flags: &[&str]) -> Server {
        let mut command = clearing();
        command
            .args(["serve", "--bus"])
            .arg(format!("local:{}", bus.display()))
            .args(["--partitions", "1"])
            .args(flags);
        let server = Server::spawn(command);
        server.wait_for_partitions();
        server
    }

    /// `command` (a `clearing serve …`) on a port of its own, once it
    /// listens (its stages may not hold partitions yet).
    fn spawn(mut command: std::process::Command) -> Server {
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("clearing serve: listening on ")
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Server { child, addr }
    }

    /// Until the stages hold their partitions (the health check lists them).
    fn wait_for_partitions(&self) {
        let started = Instant::now();
        loop {
            let (status, body) = http(&self.addr, "GET", "/health", b"");
            if status == 200 && body["rights_partitions"] != json!([]) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{body}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and the process exits 0 (after the requests in flight).
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        common::ok(std::process::Command::new("kill").args(["-TERM", &pid]));
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The partitions a server's stages hold, as its health check says.
fn held(server: &Server) -> Vec<u64> {
    let (_, body) = http(&server.addr, "GET", "/health", b"");
    body["rights_partitions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// One HTTP/1.1 request, the connection closed after it: status and JSON
/// body (`null` when the body is not JSON).
fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    http_with(addr, method, path, &[], body)
}

/// [`http`] with more headers.
fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Value) {
    let (status, _, json) = exchange(addr, method, path, headers, body);
    (status, json)
}

/// One request: its status, its head's text and its JSON body.
fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(request_head(addr, method, path, headers, body.len()).as_bytes())
        .unwrap();
    // A server may answer (413) before reading a large body, and close.
    let _ = stream.write_all(body);
    read_response(&mut stream)
}

fn request_head(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    length: usize,
) -> String {
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         {extra}Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

fn read_response(stream: &mut TcpStream) -> (u16, String, Value) {
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, head.to_lowercase(), json)
}

fn ask(server: &Server, query: &Value) -> (u16, Value) {
    http(
        &server.addr,
        "POST",
        "/v1/rights",
        query.to_string().as_bytes(),
    )
}

fn query_for(rights: &Value, date: &str) -> Value {
    json!({
        "nir": rights["nir"], "birth_date": rights["birth_date"],
        "rank": rights["rank"], "date": date
    })
}

#[test]
fn rights_are_looked_up_over_http_from_the_stages_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("data"));
    drop(data.published(dir.path()));
    let bus = dir.path().join("bus");
    let server = Server::start(&bus);

    // A beneficiary of the data set, on the first day of their coverage.
    let rights = &data.rights[0];
    let coverage = &rights["coverage"][0];
    let (status, answer) = ask(
        &server,
        &query_for(rights, coverage["from"].as_str().unwrap()),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rights"]["covered"], true);
    assert_eq!(answer["rights"]["regime"], coverage["regime"]);
    assert_eq!(answer["rights"]["declared_gp"], rights["declared_gp"]);
    assert!(
        answer["rights"]["rights_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // Named by the pseudonymous key: the NIR never comes back.
    assert!(!answer.to_string().contains(rights["nir"].as_str().unwrap()));
    let offset = answer["as_of"]["rights_offset"].as_u64().unwrap();
    assert!(offset > 0);
    // Before their coverage: not covered.
    let (status, before) = ask(&server, &query_for(rights, "1900-01-01"));
    assert_eq!((status, &before["rights"]["covered"]), (200, &json!(false)));

    bad_questions_are_refused_with_the_pipelines_codes(&server, rights);

    // Read-your-writes: an offset not yet published is refused.
    let mut ahead = query_for(rights, "2025-03-15");
    ahead["min_rights_offset"] = json!(offset + 1);
    assert_eq!(ask(&server, &ahead).0, 409);
    server.stop();

    // The beneficiary loses coverage from 2025-03-01; published while the
    // service is down, and no claim flows after it: the stage never applies
    // it, the look-up reads it from the topic.
    let mut update = rights.clone();
    update["coverage"] = json!([{"from": coverage["from"], "to": "2025-02-28",
                                 "regime": coverage["regime"], "fund": coverage["fund"]}]);
    let mut publish = clearing();
    publish
        .args(["publish", "--bus"])
        .arg(format!("local:{}", bus.display()))
        .args(["--topic", "ref.rights", "--partitions", "1"]);
    let out = common::with_stdin(&mut publish, &format!("{update}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Server::start(&bus);
    let (status, after) = ask(&server, &query_for(rights, "2025-03-15"));
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["rights"]["covered"], false);
    assert!(after["as_of"]["rights_offset"].as_u64().unwrap() > offset);
    ahead["min_rights_offset"] = after["as_of"]["rights_offset"].clone();
    assert_eq!(ask(&server, &ahead).0, 200);
    server.stop();
}

fn bad_questions_are_refused_with_the_pipelines_codes(server: &Server, rights: &Value) {
    let error = |(status, body): (u16, Value)| (status, body["error"].as_str().map(str::to_string));
    let code = |s: &str| Some(s.to_string());
    // Not JSON; an unknown field; a wrong type.
    let raw = |body: &[u8]| http(&server.addr, "POST", "/v1/rights", body);
    assert_eq!(error(raw(b"{")), (400, code("malformed")));
    let mut extra = query_for(rights, "2025-03-01");
    extra["name"] = json!("Dupont");
    assert_eq!(error(ask(server, &extra)), (400, code("malformed")));
    let mut typed = query_for(rights, "2025-03-01");
    typed["rank"] = json!("one");
    assert_eq!(error(ask(server, &typed)), (400, code("malformed")));
    // A NIR whose key is wrong; a rank out of range.
    let mut nir = query_for(rights, "2025-03-01");
    let text = rights["nir"].as_str().unwrap();
    let last = text.chars().last().unwrap().to_digit(10).unwrap();
    nir["nir"] = json!(format!("{}{}", &text[..14], (last + 1) % 10));
    assert_eq!(error(ask(server, &nir)), (400, code("invalid_nir")));
    let mut rank = query_for(rights, "2025-03-01");
    rank["rank"] = json!(0);
    assert_eq!(
        error(ask(server, &rank)),
        (400, code("invalid_beneficiary"))
    );
    // Someone the insurer does not know (a valid NIR of no one here).
    let stranger = json!({"nir": "185057800604830", "birth_date": "1985-05-12",
                          "rank": 1, "date": "2025-03-01"});
    assert_eq!(
        error(ask(server, &stranger)),
        (404, code("unknown_beneficiary"))
    );
    // A body over --max-body-bytes.
    assert_eq!(raw(&vec![b' '; 8192]).0, 413);
    // An unknown route; the OpenAPI document.
    assert_eq!(http(&server.addr, "GET", "/v1/nothing", b"").0, 404);
    let (status, document) = http(&server.addr, "GET", "/v1/openapi.json", b"");
    assert_eq!(status, 200);
    assert!(document["paths"]["/v1/rights"]["post"].is_object());
}

/// `POST /v1/lots`: each FSE answered, the good ones stamped and on
/// `fse.submitted`; the same lot again gets the same answer and appends
/// nothing, across a restart.
#[test]
fn a_lot_is_taken_once_and_each_fse_answered() {
    use clearing_pipeline::events::model::FseSubmitted;

    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("data"));
    let bus = dir.path().join("bus");
    data.references_only(&bus);
    let mut fses: Vec<Value> = data.claims[..5]
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    fses.push(json!({"fse_id": "12345678-000000001"}));
    let mut typed = fses[0].clone();
    typed["acts"] = json!("G");
    fses.push(typed);
    let lot = json!({"lot_id": "lot-2026-12-06-001", "fses": fses}).to_string();

    let started = std::time::SystemTime::now();
    let server = Server::start(&bus);
    let (status, answer) = http(&server.addr, "POST", "/v1/lots", lot.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["refused"].as_u64()),
        (Some(5), Some(2))
    );
    assert_eq!(answer["fses"][0]["status"], "accepted");
    assert_eq!(answer["fses"][0]["fse_id"], fses[0]["fse_id"]);
    assert_eq!(answer["fses"][5]["code"], "missing_field");
    assert_eq!(answer["fses"][6]["code"], "malformed");
    assert_eq!(answer["fses"][6]["field"], "acts");
    // Not a lot: refused whole.
    let raw = |body: &str| http(&server.addr, "POST", "/v1/lots", body.as_bytes());
    assert_eq!(raw(r#"{"fses": []}"#).1["error"], "malformed");
    assert_eq!(
        raw(r#"{"lot_id": "a b", "fses": [{}]}"#).1["error"],
        "malformed"
    );
    assert_eq!(
        raw(r#"{"lot_id": "x", "lot_id": "y", "fses": [{}]}"#).1["error"],
        "malformed"
    );
    server.stop();

    // Resent after a restart: the same answer, nothing appended.
    let server = Server::start(&bus);
    let (status, again) = http(&server.addr, "POST", "/v1/lots", lot.as_bytes());
    assert_eq!((status, &again), (200, &answer));
    server.stop();

    let log = LocalLog::open(&bus).unwrap();
    let submitted = common::each_record::<FseSubmitted>(&log, "fse.submitted");
    assert_eq!(submitted.len(), 5);
    let since = started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for fse in &submitted {
        // Stamped by the front door with its clock, outside the signed bytes.
        assert!(
            fse.ingested_at_millis.is_some_and(|t| t >= since),
            "{:?}",
            fse.ingested_at_millis
        );
    }
}

/// The API holds to its OpenAPI document under schemathesis (bounded and
/// seeded): no server error, every status, content type and body as the
/// document says, requests outside the document refused. The server runs
/// `--auth none` and serves its document without the signature requirement
/// (a fuzzer cannot sign; `signed_questions_…` tests the signatures). The check that a
/// schema-valid request is accepted is left out: a NIR's key (97 − the
/// number mod 97) is refused `invalid_nir`, which no schema can say.
#[test]
fn the_api_holds_to_its_openapi_document_under_schemathesis() {
    common::ensure_python_modules(&[("schemathesis", "schemathesis")]);
    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("data"));
    let bus = dir.path().join("bus");
    data.references_only(&bus);
    // The default body limit (4 MiB): a 413 is not a refusal the document
    // can promise for a body schemathesis makes.
    let server = Server::start_with(&bus, &["--auth", "none"]);
    let schema = format!("http://{}/v1/openapi.json", server.addr);
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys; from schemathesis.cli import schemathesis; \
             sys.exit(schemathesis(prog_name='schemathesis'))",
            "run",
            &schema,
            "--max-examples",
            "40",
            "--seed",
            "20261206",
            "--workers",
            "1",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every operation but the document's own.
    assert!(report.contains("Tested: 4"), "{report}");
    server.stop();
}

/// `POST /v1/eu/entitlement`: a card of an institution in the directory is
/// billed to it; an expired one, a French one and an unknown institution
/// get the codes the routing stage gives.
#[test]
fn an_eu_card_is_answered_as_routing_would() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("data"));
    drop(data.published(dir.path()));
    let server = Server::start(&dir.path().join("bus"));
    let institution = &data.institutions[0];
    let card = |extra: Value| {
        let mut query = json!({
            "country": institution.country, "institution_id": institution.institution_id,
            "card_id": "80276001234567890123", "expiry": "2030-12-31", "date": "2025-03-15"
        });
        for (k, v) in extra.as_object().unwrap() {
            query[k] = v.clone();
        }
        http(
            &server.addr,
            "POST",
            "/v1/eu/entitlement",
            query.to_string().as_bytes(),
        )
    };
    let (status, answer) = card(json!({}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (&answer["valid"], &answer["route"]),
        (&json!(true), &json!("eu"))
    );
    assert_eq!(answer["institution"]["name"], json!(institution.name));
    assert!(!answer.to_string().contains("80276001234567890123"));
    let code = |extra| card(extra).1["code"].clone();
    assert_eq!(code(json!({"expiry": "2025-03-14"})), "ehic_expired");
    assert_eq!(code(json!({"country": "FR"})), "ehic_french_card");
    assert_eq!(
        code(json!({"institution_id": "000000001"})),
        "eu_institution_unknown"
    );
    assert_eq!(card(json!({"cvv": "1"})).0, 400);
    server.stop();
}

/// A card (or its revocation) published on the local bus at `bus`.
fn publish_card(bus: &Path, record: PkiRecord) {
    let log = LocalLog::open(bus).unwrap();
    let (registry, pseudonyms) = (SchemaRegistry::new().unwrap(), PseudonymKey::development());
    let mut ingest = Ingest::new(
        &log,
        &registry,
        &pseudonyms,
        clearing_pipeline::clock::IngestClock::Wall,
    )
    .unwrap();
    ingest.pki(&record).unwrap();
    ingest.flush().unwrap();
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A card for `rpps`, valid from a month ago to a year ahead, and its key.
fn card(id: &str, rpps: &str, seed: u8) -> (PkiRecord, SigningKey) {
    let today = chrono::DateTime::from_timestamp(now(), 0)
        .unwrap()
        .date_naive();
    let key = SigningKey::generate(SignatureAlg::EcdsaP256Sha256, [seed; 32]);
    let record = PkiRecord::Certificate {
        id: id.into(),
        rpps: rpps.into(),
        alg: SignatureAlg::EcdsaP256Sha256,
        public_key: BASE64.encode(key.public_key_der()),
        issuer: "IGC-SANTE-ROOT".into(),
        not_before: today - chrono::Days::new(30),
        not_after: today + chrono::Days::new(365),
    };
    (record, key)
}

/// The headers of a request `POST path` with `body`, signed at `at` by
/// `key` as the card `cert`.
fn signed_headers(
    key: &SigningKey,
    cert: &str,
    at: i64,
    path: &str,
    body: &str,
) -> Vec<(String, String)> {
    let date = chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .to_rfc3339();
    let text = format!(
        "POST\n{path}\n{date}\n{}",
        hex::encode(Sha256::digest(body.as_bytes()))
    );
    vec![
        ("Clearing-Cert".to_string(), cert.to_string()),
        ("Clearing-Date".to_string(), date),
        (
            "Clearing-Signature".to_string(),
            BASE64.encode(key.sign(text.as_bytes())),
        ),
    ]
}

/// Questions need a professional's signature (`--auth signed`, the
/// default): a card of the health PKI published on `ref.pki`, valid and
/// unrevoked today, signs the method, path, date and body's digest.
#[test]
fn signed_questions_from_a_valid_card_are_answered_and_others_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("data"));
    let bus = dir.path().join("bus");
    data.references_only(&bus);
    let today = chrono::DateTime::from_timestamp(now(), 0)
        .unwrap()
        .date_naive();
    let (record, key) = card("CPS-TEST-1", "10000123454", 7);
    publish_card(&bus, record);
    let institution = &data.institutions[0];
    let body = json!({
        "country": institution.country, "institution_id": institution.institution_id,
        "card_id": "80276001234567890123", "expiry": "2030-12-31", "date": "2025-03-15"
    })
    .to_string();
    let path = "/v1/eu/entitlement";
    let signed =
        |cert: &str, at: i64, signed_body: &str| signed_headers(&key, cert, at, path, signed_body);

    let server = Server::start_with(&bus, &[]);
    let ask = |headers: &[(String, String)]| {
        let (status, answer) = http_with(&server.addr, "POST", path, headers, body.as_bytes());
        (status, answer["error"].as_str().map(str::to_string))
    };
    assert_eq!(ask(&signed("CPS-TEST-1", now(), &body)).0, 200);
    let unauthenticated = (401, Some("unauthenticated".to_string()));
    assert_eq!(ask(&[]), unauthenticated, "no signature");
    assert_eq!(
        ask(&signed("CPS-TEST-1", now(), "{}")),
        unauthenticated,
        "another body's"
    );
    assert_eq!(
        ask(&signed("CPS-TEST-1", now() - 600, &body)),
        unauthenticated,
        "stale"
    );
    assert_eq!(
        ask(&signed("CPS-UNKNOWN", now(), &body)),
        unauthenticated,
        "unknown card"
    );
    // A hop's header without the instances' secret: refused, not trusted.
    let hop = vec![(
        "Clearing-Forwarded".to_string(),
        format!("{}000;CPS-TEST-1;10000123454;00", now()),
    )];
    assert_eq!(ask(&hop), unauthenticated, "a forged hop");
    // Health and the document stay open.
    assert_eq!(http(&server.addr, "GET", "/health", b"").0, 200);
    assert_eq!(http(&server.addr, "GET", "/v1/openapi.json", b"").0, 200);
    server.stop();

    // Revoked today: refused, whoever holds the key.
    publish_card(
        &bus,
        PkiRecord::Revocation {
            cert: "CPS-TEST-1".into(),
            revoked_on: today,
        },
    );
    let server = Server::start_with(&bus, &[]);
    let (status, answer) = http_with(
        &server.addr,
        "POST",
        path,
        &signed("CPS-TEST-1", now(), &body),
        body.as_bytes(),
    );
    assert_eq!(
        (status, &answer["error"]),
        (403, &json!("forbidden")),
        "{answer}"
    );
    server.stop();
}

/// A signed lot carries only FSEs of the professional who signed the
/// request, each signed with one of their cards; and a lot may come as
/// Avro single-object records of `fse.submitted` (`fses_avro`).
#[test]
fn a_lot_carries_only_its_senders_fses_as_json_or_avro() {
    use clearing_pipeline::events::convert::submitted_from_input;
    use clearing_pipeline::events::model::FseSubmitted;

    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("data"));
    let bus = dir.path().join("bus");
    data.references_only(&bus);
    let claims: Vec<Value> = data
        .claims
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    let rpps = |c: &Value| c["professional"]["rpps"].as_str().unwrap().to_string();
    let own = claims[0].clone();
    let other = claims
        .iter()
        .find(|c| rpps(c) != rpps(&own))
        .expect("two professionals in the data set")
        .clone();
    // The sender's card for the requests: a second card of the
    // professional whose card signed `own`.
    let (record, key) = card("CPS-SENDER", &rpps(&own), 9);
    publish_card(&bus, record);
    let server = Server::start_with(&bus, &[]);
    let send = |lot: &Value| {
        let body = lot.to_string();
        let headers = signed_headers(&key, "CPS-SENDER", now(), "/v1/lots", &body);
        http_with(&server.addr, "POST", "/v1/lots", &headers, body.as_bytes())
    };
    let mut signed_by_other = own.clone();
    signed_by_other["signature"]["cert"] = other["signature"]["cert"].clone();
    let mut unsigned = own.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    let (status, answer) = send(&json!({"lot_id": "lot-json",
        "fses": [own, other, signed_by_other, unsigned]}));
    assert_eq!(status, 200, "{answer}");
    let verdicts: Vec<(Value, Value)> = answer["fses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["code"].clone(), f["field"].clone()))
        .collect();
    assert_eq!(
        verdicts,
        [
            (Value::Null, Value::Null),
            (json!("sender_not_signer"), json!("professional.rpps")),
            (json!("sender_not_signer"), json!("signature.cert")),
            (json!("missing_signature"), json!("signature")),
        ]
    );

    // The same as Avro records.
    let registry = SchemaRegistry::new().unwrap();
    let avro = |claim: &FseInput| {
        let fse = submitted_from_input(claim).unwrap();
        BASE64.encode(registry.encode_single(&fse))
    };
    let own_fses: Vec<&FseInput> = data
        .claims
        .iter()
        .filter(|c| {
            c.professional.as_ref().and_then(|p| p.rpps.as_deref()) == Some(rpps(&own).as_str())
        })
        .collect();
    let other_fse = data
        .claims
        .iter()
        .find(|c| {
            c.professional.as_ref().and_then(|p| p.rpps.as_deref()) == Some(rpps(&other).as_str())
        })
        .unwrap();
    let lot = json!({"lot_id": "lot-avro", "fses_avro": [
        avro(own_fses[own_fses.len() - 1]), "bm90IGF2cm8=", avro(other_fse)
    ]});
    let (status, answer) = send(&lot);
    assert_eq!(status, 200, "{answer}");
    let codes: Vec<&Value> = answer["fses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["code"])
        .collect();
    assert_eq!(
        codes,
        [
            &Value::Null,
            &json!("malformed"),
            &json!("sender_not_signer")
        ]
    );
    assert_eq!(
        answer["fses"][0]["fse_id"],
        json!(own_fses[own_fses.len() - 1].fse_id)
    );
    // Both kinds in one lot, or neither: refused whole.
    let both = json!({"lot_id": "lot-both", "fses": [own], "fses_avro": ["AA=="]});
    assert_eq!(send(&both).1["error"], "malformed");
    // Unsigned: refused before the intake.
    assert_eq!(
        http(&server.addr, "POST", "/v1/lots", lot.to_string().as_bytes()).0,
        401
    );
    server.stop();
    let log = LocalLog::open(&bus).unwrap();
    let submitted = common::each_record::<FseSubmitted>(&log, "fse.submitted");
    assert_eq!(
        submitted.len(),
        2,
        "only the sender's own FSEs are appended"
    );
}

/// Each client is held to its rate (`--rate-per-second`, `--rate-burst`):
/// beyond it, 429 with `Retry-After`. SIGTERM lets a request in flight
/// finish and be answered before the process exits.
#[test]
fn a_client_over_its_rate_is_answered_429_and_sigterm_drains_what_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("data"));
    let bus = dir.path().join("bus");
    data.references_only(&bus);
    let server = Server::start_with(
        &bus,
        &[
            "--auth",
            "none",
            "--rate-per-second",
            "2",
            "--rate-burst",
            "3",
        ],
    );
    let institution = &data.institutions[0];
    let body = json!({
        "country": institution.country, "institution_id": institution.institution_id,
        "card_id": "80276001234567890123", "expiry": "2030-12-31", "date": "2025-03-15"
    })
    .to_string();
    let path = "/v1/eu/entitlement";
    let statuses: Vec<u16> = (0..4)
        .map(|_| exchange(&server.addr, "POST", path, &[], body.as_bytes()).0)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    let (status, head, answer) = exchange(&server.addr, "POST", path, &[], body.as_bytes());
    assert_eq!((status, &answer["error"]), (429, &json!("rate_limited")));
    assert!(head.contains("\r\nretry-after: 1"), "{head}");
    // Health is not counted.
    assert_eq!(http(&server.addr, "GET", "/health", b"").0, 200);
    std::thread::sleep(Duration::from_millis(1100));

    // Half a request sent, then SIGTERM: the process waits for the rest
    // and answers it.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    stream
        .write_all(request_head(&server.addr, "POST", path, &[], body.len()).as_bytes())
        .unwrap();
    stream.write_all(first).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut server = server;
    let pid = server.child.id().to_string();
    common::ok(std::process::Command::new("kill").args(["-TERM", &pid]));
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    // No new connection is taken meanwhile.
    stream.write_all(rest).unwrap();
    let (status, _, answer) = read_response(&mut stream);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["valid"], true);
    let exited = server.child.wait().unwrap();
    assert!(exited.success(), "{exited}");
}

/// Two `clearing serve` processes on Apache Kafka split the partitions;
/// each claims its own on `serve.owners` and forwards a question for the
/// other's, so each answers for every beneficiary. One is SIGKILLed and
/// restarted: once the group has settled again, both answer for everyone.
#[test]
fn two_instances_on_kafka_each_answer_for_every_beneficiary_across_a_kill() {
    use clearing_pipeline::bus::kafka::KafkaBus;

    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("data"));
    let ns = common::fresh_namespace("serve");
    let url = format!("kafka://{}/{ns}", common::kafka_bootstrap());
    let bus = KafkaBus::connect(&url).unwrap();
    clearing_pipeline::runtime::ensure_topics(&bus, 4).unwrap();
    data.publish_references(&bus);
    let start = |name: &str| {
        let mut command = clearing();
        command
            .args(["serve", "--simulation", "--group", "g", "--partitions", "4"])
            .args(["--auth", "none", "--bus", &url, "--state"])
            .arg(dir.path().join(name))
            .env("CLEARING_PEER_SECRET", "a secret of the test's instances");
        Server::spawn(command)
    };
    let a = start("a");
    let b = start("b");
    let split = |a: &Server, b: &Server| {
        let (mut x, y) = (held(a), held(b));
        let disjoint = !x.is_empty() && !y.is_empty() && x.iter().all(|p| !y.contains(p));
        x.extend(y);
        x.sort_unstable();
        disjoint && x == [0, 1, 2, 3]
    };
    wait_until("the split", Duration::from_secs(90), || split(&a, &b));
    let expected = answers_everywhere(&[&a, &b], &data);
    // Each partition is answered by its holder, whoever is asked.
    let partitions: std::collections::BTreeSet<u64> = expected
        .iter()
        .map(|a| a["as_of"]["partition"].as_u64().unwrap())
        .collect();
    assert!(partitions.len() > 1, "{partitions:?}");
    // A hop whose MAC is not the instances' is refused.
    let forged = vec![(
        "Clearing-Forwarded".to_string(),
        format!("{}000;-;-;{}", now(), "00".repeat(32)),
    )];
    let query = query_for(&data.rights[0], "2025-03-15").to_string();
    let (status, _) = http_with(&a.addr, "POST", "/v1/rights", &forged, query.as_bytes());
    assert_eq!(status, 401);

    // B is killed and restarted on its store.
    let mut b = b;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    drop(b);
    let b = start("b");
    wait_until("the split again", Duration::from_secs(120), || {
        split(&a, &b)
    });
    let again = answers_everywhere(&[&a, &b], &data);
    assert_eq!(again, expected);
    a.stop();
    b.stop();
}

/// Waits for `done`, up to `within`.
fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every beneficiary's rights on a date, asked of each server (retried
/// while a claim is on its way: 503), the same from each; the answers.
fn answers_everywhere(servers: &[&Server], data: &DataSet) -> Vec<Value> {
    let mut answers = Vec::new();
    for rights in &data.rights {
        let query = query_for(rights, "2025-03-15");
        let mut first: Option<Value> = None;
        for server in servers {
            let deadline = Instant::now() + Duration::from_secs(30);
            let answer = loop {
                let (status, answer) = ask(server, &query);
                if status == 200 {
                    break answer;
                }
                assert_eq!(status, 503, "{answer}");
                assert!(Instant::now() < deadline, "{answer}");
                std::thread::sleep(Duration::from_millis(100));
            };
            match &first {
                None => first = Some(answer),
                Some(first) => assert_eq!(first, &answer, "the same from every instance"),
            }
        }
        answers.extend(first);
    }
    answers
}

/// One reader and room for one request: of questions sent side by side,
/// those that find the reader taken are answered 503 `busy` at once, the
/// others as usual. Waves of them are sent until one meets a taken reader
/// (the first almost always does); each answer is checked.
#[test]
fn a_question_that_finds_the_readers_taken_is_answered_busy_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("data"));
    let bus = dir.path().join("bus");
    data.references_only(&bus);
    let server = Server::start_with(
        &bus,
        &[
            "--auth",
            "none",
            "--rate-per-second",
            "0",
            "--lookup-threads",
            "1",
            "--max-in-flight",
            "1",
        ],
    );
    let queries: Vec<String> = data
        .rights
        .iter()
        .map(|r| query_for(r, "2025-03-15").to_string())
        .collect();
    let (mut answered, mut busy) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while busy == 0 || answered == 0 {
        assert!(
            Instant::now() < deadline,
            "{answered} answered, {busy} busy"
        );
        let start = std::sync::Barrier::new(16);
        let wave: Vec<(u16, Value)> = std::thread::scope(|scope| {
            let asks: Vec<_> = (0..16)
                .map(|i| {
                    let (start, addr, query) = (&start, &server.addr, &queries[i % queries.len()]);
                    scope.spawn(move || {
                        start.wait();
                        http(addr, "POST", "/v1/rights", query.as_bytes())
                    })
                })
                .collect();
            asks.into_iter().map(|a| a.join().unwrap()).collect()
        });
        for (status, answer) in wave {
            match status {
                200 => {
                    assert!(answer["as_of"]["rights_offset"].as_u64().unwrap() > 0);
                    answered += 1;
                }
                503 => {
                    assert_eq!(answer["error"], "busy", "{answer}");
                    busy += 1;
                }
                _ => panic!("{status} {answer}"),
            }
        }
    }
    // The readers are free again once the wave is answered.
    assert_eq!(ask(&server, &json!(null)).0, 400);
    let (status, answer) = ask(&server, &query_for(&data.rights[0], "2025-03-15"));
    assert_eq!(status, 200, "{answer}");
    server.stop();
}

/// The nice value (field 19 of /proc/PID/task/TID/stat) of each thread of
/// process `pid`, by the thread's name.
fn nice_by_thread(pid: u32) -> Vec<(String, i64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue; // a thread that ended meanwhile
        };
        // "TID (NAME) STATE …": the name may hold spaces and parentheses,
        // so the fields are counted from its last ')', field 3 first.
        let (head, fields) = stat.rsplit_once(')').unwrap();
        let name = head.split_once('(').unwrap().1.to_string();
        let nice = fields.split_whitespace().nth(19 - 3).unwrap();
        threads.push((name, nice.parse().unwrap()));
    }
    threads
}

/// The stages run at `--stages-nice`, their sled writers ten further
/// behind, and what answers the clients (the readers, the async threads)
/// at the process's own nice value (0 as usually started).
#[cfg(target_os = "linux")]
#[test]
fn the_stages_yield_to_the_readers() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("data"));
    let bus = dir.path().join("bus");
    data.references_only(&bus);
    let server = Server::start_with(
        &bus,
        &[
            "--auth",
            "none",
            "--lookup-threads",
            "3",
            "--stages-nice",
            "7",
        ],
    );
    let threads = nice_by_thread(server.child.id());
    // The server starts at this test's nice value (0 unless the tests run
    // niced); without privilege a nice value is only ever raised, so tests
    // run above 7 may see the stages left at it.
    let own = nice_by_thread(std::process::id())[0].1;
    let nice_of = |prefix: &str| -> Vec<i64> {
        threads
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, nice)| *nice)
            .collect()
    };
    assert_eq!(nice_of("lookup-"), [own; 3], "{threads:?}");
    assert_eq!(nice_of("lots-"), [own], "{threads:?}");
    let stages = nice_of("st-");
    assert!(!stages.is_empty(), "{threads:?}");
    let stages_nice = stages[0];
    assert!(
        stages_nice == 7 || (own > 7 && stages_nice == own),
        "{threads:?}"
    );
    assert!(stages.iter().all(|&n| n == stages_nice), "{threads:?}");
    let writers = nice_of("persist-");
    assert!(!writers.is_empty(), "{threads:?}");
    let writers_nice = (stages_nice + 10).min(19);
    assert!(writers.iter().all(|&n| n == writers_nice), "{threads:?}");
    let api = nice_of("serve");
    assert!(
        !api.is_empty() && api.iter().all(|&n| n == own),
        "{threads:?}"
    );
    // A look-up is answered by the readers meanwhile.
    let (status, answer) = ask(&server, &query_for(&data.rights[0], "2025-03-15"));
    assert_eq!(status, 200, "{answer}");
    server.stop();
}
