"""The ``storage`` gate: the posture of the S3 bucket holding training data or models (default
encryption, public-access block, TLS-only bucket policy, versioning, public ACL / policy, every object
under the prefix encrypted).

:func:`check_storage` is the entry point (:mod:`.check`); ``_policy_doc`` judges the bucket policy
document. boto3 is imported only when a check runs.
"""

from airflow_aisec.core.gates.storage._policy_doc import denies_insecure_transport, public_statements
from airflow_aisec.core.gates.storage.check import GATE, PAB_SETTINGS, check_storage, key_allowed

__all__ = ["GATE", "PAB_SETTINGS", "check_storage", "denies_insecure_transport", "key_allowed",
           "public_statements"]
