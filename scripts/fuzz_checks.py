"""A Schemathesis check for Funnel, loaded by scripts/fuzz_api.py through SCHEMATHESIS_HOOKS.

`documented_requests_are_well_formed` takes the place of Schemathesis' `positive_data_acceptance`
(see EXCLUDED_CHECKS in fuzz_api.py for why that one cannot hold for this API): a request generated
from the document as valid must get past the server's request validation. The server answers a
request it cannot take as sent with a problem document whose `code` starts with `request.`
(400 malformed parameter or header, 413 too large, 422 body not of the documented shape); any such
answer to a request the document allows means the document is looser than the server, and fails
the run. Refusals by the business rules (`auth.*`, `authority.*`, `validation.*`, `state.*` …,
which depend on who asks and on the state of the record) are not the document's to predict.
Neither is `request.beyond_head`: a read-your-writes position (`at_least`, a webhook's `from`) beyond
the log head is refused, and the head is the state of the log, not something a schema can bound;
nor `request.idempotency_key_reused`: a retry key the same caller already used for another request.
"""
import json

import schemathesis
from schemathesis.core.failures import Failure


# `request.*` refusals that depend on the state of the log, not on the shape of the request.
STATE_DEPENDENT = {"request.beyond_head", "request.idempotency_key_reused"}


@schemathesis.check
def documented_requests_are_well_formed(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code not in (400, 413, 422):
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        body = {}
    code = str(body.get("code", "")) if isinstance(body, dict) else ""
    if code in STATE_DEPENDENT:
        return None
    if code.startswith("request.") or not code:
        detail = str(body.get("detail", "")) if isinstance(body, dict) else ""
        raise Failure(
            operation=case.operation.label,
            title="Documented request refused as malformed",
            message=(
                f"The document allows this request, but the server refused it with "
                f"{response.status_code} `{code or '(no problem document)'}`: {detail}\n"
                "Tighten the document (or fix the server) so both say the same."
            ),
        )
    return None
