package billing

// declareMethods builds the method table. Each area declares its methods at the top of the
// file that holds their handlers (name, access level, handler, arguments, one-line doc), so
// a method's declaration, gate level, handler and SQL are read in one file, and its tests
// in the file's _test.go. The list runs in the reference's order of sections; the whole
// table, sorted, is docs/METHODS.md and GET /openapi.json.
func (s *Service) declareMethods() {
	for _, area := range [][]Method{
		s.userMethods(),        // users.go: User, User control
		s.sessionMethods(),     // sessions.go: login, refreshToken, logout (browsers)
		s.routeMethods(),       // routes.go: Routing
		s.directionMethods(),   // directions.go: Directions and tarification
		s.tariffMethods(),      // tariffs.go: Directions and tarification
		s.periodMethods(),      // periods.go: Directions and tarification (rates by period)
		s.billTypeMethods(),    // billtypes.go: Directions and tarification
		s.callMethods(),        // calls.go: Call processing, resolveDirection
		s.bundleMethods(),      // bundles.go: bundles of minutes and SMS on tariff options
		s.textBalanceMethods(), // textbalance.go: getTextBalance
		s.asteriskMethods(),    // asterisk_methods.go: callbacks, bans, dialplans through AMI
		s.scriptMethods(),      // scripts.go: createTTS
		s.didMethods(),         // dids.go: Direct numbers
		s.didRuleMethods(),     // didrules.go: DIDTables Filters
		s.aliasMethods(),       // aliases.go: Personal plan sets (aliases)
		s.accessMethods(),      // access.go: Data security (bans), API access
		s.prepaidMethods(),     // prepaid.go: invite and prepaid codes, registration
		s.smsMethods(),         // sms.go: SMS
		s.extensionMethods(),   // extensions_methods.go: SIP accounts
		s.logMethods(),         // logs.go: Event log
		s.currencyMethods(),    // currency.go: Interface functions
		s.newsMethods(),        // news.go: News and broadcast messages
		s.ticketMethods(),      // tickets.go: Ticket system
		s.invoiceMethods(),     // invoices.go: Finances and statistics
		s.paymentMethods(),     // payments.go: built-in payment methods (bank, Stripe)
		s.pdfMethods(),         // pdf.go: PDF invoices
		s.statsMethods(),       // stats.go: getStats
		s.accountMethods(),     // accounts.go: Accounts, transferMoney
		s.gsmMethods(),         // gsm.go: GSM
		s.simMethods(),         // sims.go: SIM-cards
		s.maintenanceMethods(), // maintenance.go: doMaintenance
		s.importMethods(),      // imports.go: importDeck
		s.activeCallMethods(),  // activecalls.go: getActiveCalls, hangupCalls
	} {
		s.Methods.Add(area...)
	}
}
