#!/usr/bin/env bash
# A walk through the registry with the demo keys that `epoa serve` made under ./var/demo:
# issue a POA, check authority, add an attorney, then conclude the case.
# Run it beside a running `epoa serve` (same directory): bash scripts/walkthrough.sh
# Each run walks a case of its own (CASE=... names one), since a concluded case takes no
# new POA; a step the registry refuses stops the walk and shows the problem it answered.
set -euo pipefail
API=${API:-http://127.0.0.1:8000}
EPOA=${EPOA:-epoa}
key() { python3 -c "import json,sys; print([k for k,r in json.load(open('var/api-keys.json')).items() if r==sys.argv[1]][0])" "$1"; }
PORTAL=$(key portal); COURT=$(key court)
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
VALID_UNTIL=$(python3 -c 'import datetime as d; print(d.date.today() + d.timedelta(days=365))')
CASE=${CASE:-7594-26-00-2/$(date -u +%s)}
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT  # the documents and answers of this run
ANSWER="$WORK/answer.json"
# curl that prints the answer, or stops the walk with the problem the registry answered.
call() {
  if ! curl -sS --fail-with-body -o "$ANSWER" "$@"; then
    cat "$ANSWER" >&2 2>/dev/null; echo >&2; echo "walkthrough: refused, stopped" >&2; exit 1
  fi
  cat "$ANSWER"
}

# 1. The principal signs an issue document with their EDS key (here: the demo PKCS#12).
cat > "$WORK/issue.json" <<JSON
{"type": "epoa.issue", "document_id": "$(python3 -c 'import uuid; print(uuid.uuid4())')",
 "signed_at": "$NOW", "case_number": "$CASE",
 "principal": {"iin": "850312400128"}, "attorneys": [{"iin": "790521300451"}],
 "rights": ["represent_first_instance", "appeal_judicial_acts"], "valid_until": "$VALID_UNTIL"}
JSON
$EPOA sign --key var/demo/principal.p12 "$WORK/issue.json" > "$WORK/issue.signed.json"
call -X POST "$API/v1/powers-of-attorney" -H "Authorization: Bearer $PORTAL" \
  -H 'Content-Type: application/json' --data "@$WORK/issue.signed.json" > "$WORK/issued.json"
POA=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["poa_id"])' < "$WORK/issued.json")
echo "issued $POA in case $CASE"

# 2. A court asks: may this attorney represent the principal in first instance?
call -G "$API/v1/authority" -H "Authorization: Bearer $COURT" \
  --data-urlencode "case_number=$CASE" --data-urlencode "attorney_iin=790521300451" \
  --data-urlencode "right=represent_first_instance"; echo

# 3. The principal adds a second attorney.
cat > "$WORK/add.json" <<JSON
{"type": "epoa.add-attorney", "document_id": "$(python3 -c 'import uuid; print(uuid.uuid4())')",
 "signed_at": "$NOW", "poa_id": "$POA", "attorney": {"iin": "881107400786"}}
JSON
$EPOA sign --key var/demo/principal.p12 "$WORK/add.json" \
  | call -X POST "$API/v1/powers-of-attorney/$POA/attorneys" \
    -H "Authorization: Bearer $PORTAL" -H 'Content-Type: application/json' --data @- > /dev/null
echo "added an attorney"

# 4. The court system publishes both case events (here over HTTP; Kafka carries the same).
for TYPE in judgment-entered-into-force execution-documents-issued; do
  if [ "$TYPE" = judgment-entered-into-force ]; then
    DATA="{\"case_number\": \"$CASE\", \"judicial_act_id\": \"JA-1\", \"entered_into_force_on\": \"2026-11-20\"}"
  else
    DATA="{\"case_number\": \"$CASE\", \"issued_on\": \"2026-11-24\", \"documents\": [\"EL-1\"]}"
  fi
  cat > "$WORK/event.json" <<JSON
{"specversion": "1.0", "id": "$(python3 -c 'import uuid; print(uuid.uuid4())')",
 "source": "urn:kz:court:ecourt", "type": "kz.court.case.$TYPE", "subject": "$CASE",
 "time": "$NOW", "datacontenttype": "application/json", "data": $DATA}
JSON
  $EPOA sign --cloudevent --key var/demo/court.p12 "$WORK/event.json" \
    | call -X POST "$API/v1/case-events" -H "Authorization: Bearer $COURT" \
      -H 'Content-Type: application/cloudevents+json' --data @-; echo
done

# 5. The case has concluded: the POA ended with it.
call "$API/v1/powers-of-attorney/$POA" -H "Authorization: Bearer $COURT" \
  | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["status"], p["termination"]["reason"])'
