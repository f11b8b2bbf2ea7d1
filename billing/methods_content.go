package billing

// declareContentMethods declares the personal plan sets (aliases), news, the ticket
// system, prepaid codes and registration by code.
func (s *Service) declareContentMethods() {
	s.Methods.Add(
		// Personal plan sets (aliases)
		method("getAliases", 1, s.getAliases, "all:bool=false"),
		method("getAlias", 1, s.getAlias, "id:int!"),
		method("addAlias", 1, s.addAlias, "alias:string!", "destination:string!", "sip_extension:string", "global:bool=false"),
		method("updateAlias", 1, s.updateAlias, "id:int", "alias:string", "destination:string", "sip_extension:string",
			"global:bool"),
		method("deleteAlias", 1, s.deleteAlias, "id:int!"),
		// News and broadcast messages
		method("getNews", 0, s.getNews, "id:string", "all:bool=false", "broadcast:bool=false"),
		method("addNews", 33, s.addNews, "id:string!", "isbroadcast:bool=false", "user:string", "access:int=0",
			"language:string", "typ:ustring{info,warning,error,success}=info", "broadcast:string", "header:string",
			"message:string"),
		method("updateNews", 33, s.updateNews, "id:string!", "isbroadcast:bool", "user:string", "access:int",
			"language:string", "typ:ustring{info,warning,error,success}", "broadcast:string", "header:string",
			"message:string"),
		method("deleteNews", 33, s.deleteNews, "id:string!"),
		// Ticket system
		method("getUnreadTickets", 1, s.getUnreadTickets),
		method("createTicket", 1, s.createTicket, "destination:string", "subject:string", "message:string!",
			"comment:string", "ticket:int"),
		method("getTickets", 1, s.getTickets, "limit:int=800", "all:bool=false"),
		method("getTicket", 1, s.getTicket, "ticket:int!"),
		method("updateTicket", 1, s.updateTicket, "ticket:int!",
			"action:ustring{close,open,markunread,mark_unread,assign}=open", "assign_to:string"),
		method("deleteTicket", 33, s.deleteTicket, "ticket:int", "username:string"),
		method("deleteMessage", 33, s.deleteMessage, "id:int!"),
		// Prepaid codes (invites), registration
		method("registerRequest", 0, s.registerRequest, "signature:string!"),
		method("registerByCode", 0, s.registerByCode, "code:string!", "register:bool=false", "user:string",
			"web_password:string", "language:string"),
		method("activatePrepaidCode", 1, s.activatePrepaidCode, "code:string!", "amount:money=0"),
		method("getPrepaidCodes", 1, s.getPrepaidCodes, "active:bool=false", "all:bool=false", "count:bool=false"),
		method("createPrepaidCode", 1, s.createPrepaidCode, "accesslevel:int=10", "balance:money=0", "target:string"),
		method("deletePrepaidCode", 1, s.deletePrepaidCode, "code:string!"),
	)
}
