"""AWS's own MSK IAM signer (aws-msk-iam-sasl-signer-python), for the
cross-check in tests/tests/integration/msk_iam.rs.

Usage: reference_token.py REGION ACCESS_KEY SECRET_KEY [SESSION_TOKEN]
(fake test credentials only). Prints {"token": ..., "expiry_ms": ...}.
"""

import json
import sys

from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from botocore.credentials import CredentialProvider, Credentials


class Fixed(CredentialProvider):
    def __init__(self, access_key, secret_key, token):
        super().__init__()
        self.credentials = Credentials(access_key, secret_key, token)

    def load(self):
        return self.credentials


def main():
    region, access_key, secret_key = sys.argv[1:4]
    token = sys.argv[4] if len(sys.argv) > 4 else None
    signed, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(
        region, Fixed(access_key, secret_key, token)
    )
    print(json.dumps({"token": signed, "expiry_ms": expiry_ms}))


if __name__ == "__main__":
    main()
