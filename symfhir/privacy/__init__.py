"""Privacy requests (policy §6, §9, §10, §11): each one a FHIR Task on the EHR's server.

``model`` holds what every part shares: the request as symfhir reads it from its Task, and
the outcome a kind's handler returns (the Task's business status and outputs).
"""
