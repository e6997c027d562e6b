"""DAG files with insecure and hardened training pods (KubernetesPodOperator arguments and
``executor_config["pod_override"]`` as a ``V1Pod`` and as a plain dict), and a policy for them."""

from __future__ import annotations

DIGEST_IMAGE = "registry.example.com/ml/train@sha256:" + "4f" * 32

POD_POLICY = """
version: 1
name: pods
platform:
  pods:
    dag_tags: [training]
    allowed_registries: [registry.example.com]
"""

INSECURE_DAG = '''
import pendulum
from airflow.sdk import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from kubernetes.client import models as k8s

with DAG("insecure_training_pods", schedule=None, start_date=pendulum.datetime(2024, 1, 1), tags=["training"]):
    KubernetesPodOperator(
        task_id="train_root", image="python:3.11", hostnetwork=True,
        security_context={"runAsUser": 0},
        container_security_context={"privileged": True},
        volumes=[k8s.V1Volume(name="docker", host_path=k8s.V1HostPathVolumeSource(path="/var/run/docker.sock"))],
    )
    EmptyOperator(task_id="override_v1pod", executor_config={"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(
        host_pid=True, containers=[k8s.V1Container(name="base", image="ghcr.io/x/worker:latest",
                                                   security_context=k8s.V1SecurityContext(privileged=True))]))})
    EmptyOperator(task_id="override_dict", executor_config={"pod_override": {"spec": {
        "hostPID": True, "containers": [{"name": "base", "image": "ghcr.io/x/worker:latest",
                                         "securityContext": {"privileged": True}}]}}})
'''

HARDENED_DAG = f'''
import pendulum
from airflow.sdk import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from kubernetes.client import models as k8s

IMAGE = "{DIGEST_IMAGE}"
SC = {{"runAsNonRoot": True, "runAsUser": 1000, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False}}

with DAG("hardened_training_pods", schedule=None, start_date=pendulum.datetime(2024, 1, 1), tags=["training"]):
    KubernetesPodOperator(
        task_id="train", image=IMAGE,
        security_context=k8s.V1PodSecurityContext(run_as_non_root=True, run_as_user=1000),
        container_security_context=k8s.V1SecurityContext(read_only_root_filesystem=True,
                                                         allow_privilege_escalation=False),
        container_resources=k8s.V1ResourceRequirements(limits={{"cpu": "2", "memory": "4Gi"}}),
        volumes=[k8s.V1Volume(name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource())],
    )
    EmptyOperator(task_id="override_v1pod", executor_config={{"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(
        containers=[k8s.V1Container(name="base", image=IMAGE,
                                    security_context=k8s.V1SecurityContext(run_as_non_root=True,
                                                                           read_only_root_filesystem=True),
                                    resources=k8s.V1ResourceRequirements(limits={{"cpu": "1", "memory": "1Gi"}}))]))}})
    EmptyOperator(task_id="override_dict", executor_config={{"pod_override": {{"spec": {{
        "containers": [{{"name": "base", "image": IMAGE, "securityContext": SC,
                         "resources": {{"limits": {{"cpu": "1", "memory": "1Gi"}}}}}}]}}}}}})
'''

#: Rules each task of INSECURE_DAG breaks.
INSECURE_RULES = {
    "train_root": {"platform.pod_run_as_root", "platform.pod_privileged", "platform.pod_host_network",
                   "platform.pod_host_path", "platform.pod_writable_root_fs", "platform.pod_resource_limits",
                   "platform.pod_image_digest", "platform.pod_image_registry"},
    "override_v1pod": {"platform.pod_run_as_root", "platform.pod_privileged", "platform.pod_host_pid",
                       "platform.pod_writable_root_fs", "platform.pod_resource_limits",
                       "platform.pod_image_digest", "platform.pod_image_registry"},
}
INSECURE_RULES["override_dict"] = INSECURE_RULES["override_v1pod"]
