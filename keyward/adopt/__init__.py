"""``keyward adopt``: a hardcoded secret found by a scan becomes a secret in a store.

* :mod:`keyward.adopt.reread` reads the value again where it was found;
* :mod:`keyward.adopt.kinds` says which kind of secret it is and how it is stored;
* :mod:`keyward.adopt.service` checks, writes the store and the inventory, switches Lambda
  dependents to a reference and rotates.

Like ``keyward.cli.compose`` this package joins the scan, the inventory and rotation; nothing
in those imports it.
"""
