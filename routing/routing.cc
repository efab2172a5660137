// Routing policy (statement classification, rules, route decisions) arrives with the mirroring and
// routing issues; the library exists now so the dependency direction is fixed from the start.
namespace pgtandem::routing {}
