//! `clearing serve` over real loopback HTTP: the rights look-up answered
//! from the entitlement stage's state of a real process on a local log, bad
//! input refused with the pipeline's codes, a rights update published while
//! no claim flows answered at once (the records the stage has not applied
//! yet are read by the look-up), and a clean stop on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::clearing;
use common::dataset::DataSet;
use serde_json::{Value, json};

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
        let mut child = clearing()
            .args(["serve", "--bus"])
            .arg(format!("local:{}", bus.display()))
            .args(["--partitions", "1", "--listen", "127.0.0.1:0"])
            .args(flags)
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
        let server = Server { child, addr };
        server.wait_for_partitions();
        server
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
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         {extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading a large body, and close.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
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
    use clearing_pipeline::bus::local::LocalLog;
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

/// Questions need a professional's signature (`--auth signed`, the
/// default): a card of the health PKI published on `ref.pki`, valid and
/// unrevoked today, signs the method, path, date and body's digest.
#[test]
fn signed_questions_from_a_valid_card_are_answered_and_others_refused() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use clearing_pipeline::bus::local::LocalLog;
    use clearing_pipeline::events::SchemaRegistry;
    use clearing_pipeline::pki::{PkiRecord, SignatureAlg, SigningKey};
    use clearing_pipeline::pseudonym::PseudonymKey;
    use clearing_pipeline::runtime::ingest::Ingest;
    use sha2::{Digest, Sha256};

    let dir = tempfile::tempdir().unwrap();
    let data = DataSet::small_month(&dir.path().join("data"));
    let bus = dir.path().join("bus");
    data.references_only(&bus);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let today = chrono::DateTime::from_timestamp(now(), 0)
        .unwrap()
        .date_naive();
    let key = SigningKey::generate(SignatureAlg::EcdsaP256Sha256, [7; 32]);
    let publish = |record: PkiRecord| {
        let log = LocalLog::open(&bus).unwrap();
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
    };
    publish(PkiRecord::Certificate {
        id: "CPS-TEST-1".into(),
        rpps: "10000123454".into(),
        alg: SignatureAlg::EcdsaP256Sha256,
        public_key: BASE64.encode(key.public_key_der()),
        issuer: "IGC-SANTE-ROOT".into(),
        not_before: today - chrono::Days::new(30),
        not_after: today + chrono::Days::new(365),
    });
    let institution = &data.institutions[0];
    let body = json!({
        "country": institution.country, "institution_id": institution.institution_id,
        "card_id": "80276001234567890123", "expiry": "2030-12-31", "date": "2025-03-15"
    })
    .to_string();
    let path = "/v1/eu/entitlement";
    let signed = |cert: &str, at: i64, signed_body: &str| {
        let date = chrono::DateTime::from_timestamp(at, 0)
            .unwrap()
            .to_rfc3339();
        let text = format!(
            "POST\n{path}\n{date}\n{}",
            hex::encode(Sha256::digest(signed_body.as_bytes()))
        );
        vec![
            ("Clearing-Cert".to_string(), cert.to_string()),
            ("Clearing-Date".to_string(), date),
            (
                "Clearing-Signature".to_string(),
                BASE64.encode(key.sign(text.as_bytes())),
            ),
        ]
    };

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
    // Health and the document stay open.
    assert_eq!(http(&server.addr, "GET", "/health", b"").0, 200);
    assert_eq!(http(&server.addr, "GET", "/v1/openapi.json", b"").0, 200);
    server.stop();

    // Revoked today: refused, whoever holds the key.
    publish(PkiRecord::Revocation {
        cert: "CPS-TEST-1".into(),
        revoked_on: today,
    });
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
