"""Marketing by consent only (privacy policy §3, §4, §6) and the CCPA "do not sell or share".

- ``audience``: the only ways contacts and photos are picked for marketing (deny by default).
- ``unsubscribe``: signed one-click unsubscribe links and the RFC 8058 e-mail headers.
- ``sms_optout``: the FCC's opt-out wording, the SMS webhook's signature, the reply.
- ``sms_inbound``: an inbound text acted on (an opt-out withdraws the consent at once).
- ``withdraw``: a channel's marketing consent withdrawn, by client or by contact.
- ``optout``: the privacy-request handler of ``opt-out`` and ``ccpa-opt-out-of-sale``.
- ``rules``: ``mappings/marketing.yaml``; ``contacts``: phones and e-mails on Patient.telecom.

Workflows take the FHIR client, the acting user, keyword ``now`` and an ``audit`` trail;
those touching several clients name each in ``resources`` (``Patient/<id>``).
"""
